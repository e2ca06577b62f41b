"""Kafka addresses as recsite writes them: ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

KAFKA_SCHEME = "kafka://"


@dataclass(frozen=True)
class KafkaAddress:
    bootstrap: str
    topic: str

    @classmethod
    def parse(cls, spec: str) -> KafkaAddress:
        """Raises ``ValueError`` with a message for a person when ``spec`` is not an address."""
        parts = urlsplit(spec)
        topic = parts.path.strip("/")
        if not spec.startswith(KAFKA_SCHEME) or not parts.netloc or not topic:
            raise ValueError(f"bad Kafka address {spec!r}: expected kafka://HOST:PORT/TOPIC")
        return cls(bootstrap=parts.netloc, topic=topic)

    def __str__(self) -> str:
        return f"{KAFKA_SCHEME}{self.bootstrap}/{self.topic}"
