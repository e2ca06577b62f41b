"""Where stream lines come from: a Kafka topic, a log file (or standard input), the simulator.

A source yields batches of raw lines (bytes) and is told, through ``commit()``, when the last
batch is safely in the database; only Kafka does something with that (it commits offsets).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

from stream import metrics

logger = logging.getLogger(__name__)


class SourceError(Exception):
    """A source that cannot be opened or read, with a message for a person."""


class LineSource(Protocol):
    name: str
    #: bytes (files) or lines (Kafka, simulator) expected in all, when known, for progress bars
    total: int | None
    done: int

    def batches(
        self, *, batch_size: int, max_lines: int | None = None, idle_seconds: float | None = None
    ) -> Iterator[list[bytes]]: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


class IterableSource:
    """Lines from any iterable: the simulator, tests."""

    def __init__(self, lines: Iterable[bytes | str], *, name: str = "lines", total: int | None = None) -> None:
        self.name = name
        self.total = total
        self.done = 0
        self._lines = iter(lines)

    def batches(
        self, *, batch_size: int, max_lines: int | None = None, idle_seconds: float | None = None
    ) -> Iterator[list[bytes]]:
        remaining = max_lines
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            batch = [line if isinstance(line, bytes) else line.encode() for line in islice(self._lines, size)]
            if not batch:
                return
            self.done += len(batch)
            if remaining is not None:
                remaining -= len(batch)
            yield batch

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


class FileSource:
    """A log file, one event per line; ``-`` reads standard input."""

    def __init__(self, path: str) -> None:
        self.name = f"file:{path}"
        self.done = 0
        if path == "-":
            self._file: BinaryIO = sys.stdin.buffer
            self.total = None
            return
        try:
            self._file = Path(path).open("rb")  # noqa: SIM115 - closed in close()
        except OSError as error:
            raise SourceError(f"cannot open {path}: {error.strerror}") from error
        self.total = os.fstat(self._file.fileno()).st_size

    def batches(
        self, *, batch_size: int, max_lines: int | None = None, idle_seconds: float | None = None
    ) -> Iterator[list[bytes]]:
        remaining = max_lines
        batch: list[bytes] = []
        for line in self._file:
            self.done += len(line)
            batch.append(line)
            if remaining is not None:
                remaining -= 1
            if len(batch) >= batch_size or remaining == 0:
                yield batch
                batch = []
            if remaining == 0:
                return
        if batch:
            yield batch

    def commit(self) -> None:
        pass

    def close(self) -> None:
        if self._file is not sys.stdin.buffer:
            self._file.close()


class KafkaSource:
    """A Kafka topic read as a consumer group; offsets are committed only after each batch is
    stored, so a consumer that dies mid-batch re-reads that batch (and ingestion is idempotent)."""

    def __init__(self, *, bootstrap: str, topic: str, group: str, connect_timeout_ms: int = 30_000) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        self.name = f"kafka://{bootstrap}/{topic}"
        self.topic = topic
        self._lag_reported_at = 0.0
        self.total = None
        self.done = 0
        try:
            self._consumer = KafkaConsumer(
                topic,
                bootstrap_servers=bootstrap.split(","),
                group_id=group,
                client_id=f"recsite-ingest-{os.getpid()}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=30_000,
                bootstrap_timeout_ms=connect_timeout_ms,
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
        except KafkaError as error:
            raise SourceError(f"cannot reach Kafka at {bootstrap}: {error}") from error

    def batches(
        self, *, batch_size: int, max_lines: int | None = None, idle_seconds: float | None = None
    ) -> Iterator[list[bytes]]:
        remaining = max_lines
        idle_since = time.monotonic()
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            polled = self._consumer.poll(timeout_ms=500, max_records=size)
            batch = [record.value for records in polled.values() for record in records if record.value is not None]
            if time.monotonic() - self._lag_reported_at >= 5:
                self._report_lag()
            if not batch:
                if idle_seconds is not None and time.monotonic() - idle_since >= idle_seconds:
                    return
                continue
            idle_since = time.monotonic()
            self.done += len(batch)
            if remaining is not None:
                remaining -= len(batch)
            yield batch

    def _report_lag(self) -> None:
        # end_offsets is a round trip to the broker: done every few seconds, not every poll.
        self._lag_reported_at = time.monotonic()
        partitions = self._consumer.assignment()
        if not partitions:
            return
        try:
            ends = self._consumer.end_offsets(list(partitions))
            for partition in partitions:
                lag = ends[partition] - self._consumer.position(partition)
                metrics.CONSUMER_LAG.labels(partition=str(partition.partition)).set(max(lag, 0))
        except Exception:
            logger.debug("could not read consumer lag", exc_info=True)

    def commit(self) -> None:
        self._consumer.commit()

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def source_open(spec: str, *, kafka_group: str, simulator_lines: Iterable[bytes] | None = None) -> LineSource:
    """Open ``kafka://HOST:PORT/TOPIC``, ``file:PATH`` (``file:-`` for standard input), or
    ``simulator`` (whose lines the caller passes in ``simulator_lines``)."""
    if spec.startswith("kafka://"):
        parts = urlsplit(spec)
        topic = parts.path.strip("/")
        if not parts.netloc or not topic:
            raise SourceError(f"bad Kafka source {spec!r}: expected kafka://HOST:PORT/TOPIC")
        return KafkaSource(bootstrap=parts.netloc, topic=topic, group=kafka_group)
    if spec.startswith("file:"):
        path = spec.removeprefix("file:")
        if not path:
            raise SourceError("bad file source: expected file:PATH or file:- for standard input")
        return FileSource(path)
    if spec == "simulator" and simulator_lines is not None:
        return IterableSource(simulator_lines, name="simulator")
    raise SourceError(f"unknown source {spec!r}: use kafka://HOST:PORT/TOPIC, file:PATH, file:- or simulator")
