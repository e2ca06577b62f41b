"""Running the simulated platform: its world and its event stream, to a file or Kafka."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from core.options import options_parse
from simulator.world import World


@dataclass(frozen=True)
class SimulatorOptions:
    seed: int = 42
    viewers: int = 500
    movies: int = 400
    sessions_per_viewer: float = 8.0
    days: float = 7.0
    junk_rate: float = 0.0
    older_focus: float = 1.0
    # When the simulated days end; None keeps the fixed, reproducible start (2023-10-01) that
    # tests rely on, and the demo passes the present so that its trends reach today.
    end: datetime | None = None

    @property
    def start(self) -> datetime | None:
        return None if self.end is None else self.end - timedelta(days=self.days)

    @classmethod
    def parse(cls, text: str) -> SimulatorOptions:
        """``seed=7,viewers=300`` -> options; unknown keys or bad numbers raise ValueError."""
        pairs = [part for part in text.split(",") if part.strip()]
        # options_parse typed each value by its field; mypy sees only int | float | bool.
        return cls(**options_parse(cls, pairs, what="simulator option"))  # type: ignore[arg-type]


def simulator_world(config: SimulatorOptions) -> World:
    return World.generate(seed=config.seed, viewers=config.viewers, movies=config.movies)


def simulator_events(world: World, config: SimulatorOptions) -> Iterable[bytes]:
    return world.events(
        sessions_per_viewer=config.sessions_per_viewer,
        days=config.days,
        junk_rate=config.junk_rate,
        older_focus=config.older_focus,
        start=config.start,
    )


def simulator_end(text: str) -> datetime:
    """``now`` or an ISO date-time (UTC unless it says otherwise) -> when the simulated days end."""
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--end must be 'now' or an ISO date-time such as 2026-12-01T18:00, not {text!r}") from None
    return end if end.tzinfo else end.replace(tzinfo=UTC)


def simulator_write(*, lines: Iterable[bytes], out: BinaryIO, on_line: Callable[[], None] | None = None) -> int:
    count = 0
    for line in lines:
        out.write(line + b"\n")
        count += 1
        if on_line and count % 10_000 == 0:
            on_line()
    return count


def simulator_publish(
    *, lines: Iterable[bytes], bootstrap: str, topic: str, on_line: Callable[[], None] | None = None
) -> int:
    """Send lines to a Kafka topic, keyed by viewer id so one viewer's events stay in order on
    one partition (and so one consumer folds a viewer's watch minutes)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","), linger_ms=20, batch_size=256 * 1024, acks="all", retries=5
    )
    count = 0
    try:
        for line in lines:
            key = line.split(b",", 2)[1] if line.count(b",") >= 2 else b""
            producer.send(topic, key=key[:32] or None, value=line)
            count += 1
            if on_line and count % 10_000 == 0:
                on_line()
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return count
