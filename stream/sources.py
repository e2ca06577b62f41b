"""Where stream lines come from: a Kafka topic, a log file (or standard input), the simulator.

A source yields batches of raw lines (bytes) and is told, through ``commit()``, when the last
batch is safely in the database; only Kafka does something with that (it commits offsets).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Protocol

from django.conf import settings

from core.kafka import KAFKA_SCHEME, KafkaAddress
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
        self,
        *,
        batch_size: int,
        max_lines: int | None = None,
        idle_seconds: float | None = None,
        stopped: Callable[[], bool] | None = None,
    ) -> Iterator[list[bytes]]: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


class LineBudget:
    """How many more lines a source may read (``--max-events``); ``None`` is no limit.

    One rule for every source: a batch is at most ``batch_size`` lines and never more than what
    is left of the budget. A stop asked for (``stopped``, checked between reads) exhausts it too:
    a stop's signal raised inside a Kafka poll can be caught by the client's own loop and lost,
    and the consumer then waited for a batch that would never come.
    """

    def __init__(self, limit: int | None, *, stopped: Callable[[], bool] | None = None) -> None:
        self.remaining = limit
        self._stopped = stopped

    @property
    def exhausted(self) -> bool:
        if self._stopped is not None and self._stopped():
            return True
        return self.remaining is not None and self.remaining <= 0

    def batch_size(self, batch_size: int) -> int:
        return batch_size if self.remaining is None else min(batch_size, self.remaining)

    def spend(self, lines: int) -> None:
        if self.remaining is not None:
            self.remaining -= lines


class IterableSource:
    """Lines from any iterable: the simulator, tests."""

    def __init__(self, lines: Iterable[bytes | str], *, name: str = "lines", total: int | None = None) -> None:
        self.name = name
        self.total = total
        self.done = 0
        self._lines = iter(lines)

    def batches(
        self,
        *,
        batch_size: int,
        max_lines: int | None = None,
        idle_seconds: float | None = None,
        stopped: Callable[[], bool] | None = None,
    ) -> Iterator[list[bytes]]:
        budget = LineBudget(max_lines, stopped=stopped)
        while not budget.exhausted:
            size = budget.batch_size(batch_size)
            batch = [line if isinstance(line, bytes) else line.encode() for line in islice(self._lines, size)]
            if not batch:
                return
            self.done += len(batch)
            budget.spend(len(batch))
            yield batch

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


class BatchSource:
    """Batches as a producer hands them over (the live player): each is stored as it comes,
    however small, rather than waiting to fill ``batch_size``; a longer one is split."""

    def __init__(self, batches: Iterable[list[bytes]], *, name: str) -> None:
        self.name = name
        self.total: int | None = None
        self.done = 0
        self._batches = iter(batches)

    def batches(
        self,
        *,
        batch_size: int,
        max_lines: int | None = None,
        idle_seconds: float | None = None,
        stopped: Callable[[], bool] | None = None,
    ) -> Iterator[list[bytes]]:
        budget = LineBudget(max_lines, stopped=stopped)
        for handed in self._batches:
            for first in range(0, len(handed), batch_size):
                if budget.exhausted:
                    return
                batch = handed[first : first + budget.batch_size(batch_size)]
                self.done += len(batch)
                budget.spend(len(batch))
                yield batch

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


class FileSource:
    """A log file, one event per line; ``-`` reads standard input.

    A line is never read past ``max_line_bytes`` (``STREAM_MAX_LINE_BYTES``): a longer one comes
    out cut to one byte over the bound, which the parser rejects as ``too_long``, and the rest of
    it is skipped in small reads. A 150 MB line once took 386 MB of memory to reject.
    """

    SKIP_CHUNK = 64 * 1024

    def __init__(self, path: str, *, max_line_bytes: int | None = None) -> None:
        self.name = f"file:{path}"
        self.done = 0
        self.cut = 0  # lines longer than the bound, cut to be rejected unread
        self._max_line_bytes = max_line_bytes
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
        self,
        *,
        batch_size: int,
        max_lines: int | None = None,
        idle_seconds: float | None = None,
        stopped: Callable[[], bool] | None = None,
    ) -> Iterator[list[bytes]]:
        budget = LineBudget(max_lines, stopped=stopped)
        lines = self._lines()
        while not budget.exhausted:
            batch = list(islice(lines, budget.batch_size(batch_size)))
            if not batch:
                return
            budget.spend(len(batch))
            yield batch

    def _lines(self) -> Iterator[bytes]:
        limit = (self._max_line_bytes or int(settings.STREAM_MAX_LINE_BYTES)) + 1
        while line := self._file.readline(limit):
            self.done += len(line)
            if len(line) == limit and not line.endswith(b"\n"):
                skipped = self._skip_rest_of_line()
                self.cut += 1
                # Rejected and counted like any bad line; the log says so once, at close().
                logger.debug(
                    "a line of %s bytes was cut to %s to be rejected unread", f"{len(line) + skipped:,}", limit
                )
            yield line

    def _skip_rest_of_line(self) -> int:
        skipped = 0
        while chunk := self._file.readline(self.SKIP_CHUNK):
            skipped += len(chunk)
            self.done += len(chunk)
            if chunk.endswith(b"\n"):
                break
        return skipped

    def commit(self) -> None:
        pass

    def close(self) -> None:
        if self.cut:
            logger.warning(
                "%s lines longer than %s bytes were cut to be rejected unread (too_long)",
                f"{self.cut:,}",
                f"{self._max_line_bytes or int(settings.STREAM_MAX_LINE_BYTES):,}",
            )
        if self._file is not sys.stdin.buffer:
            self._file.close()


class KafkaSource:
    """A Kafka topic read as a consumer group; offsets are committed only after each batch is
    stored, so a consumer that dies mid-batch re-reads that batch (and ingestion is idempotent)."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        connect_timeout_ms: int = 30_000,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        self.name = f"kafka://{bootstrap}/{topic}"
        self.topic = topic
        self._lag_reported_at = 0.0
        self.total: int | None = None
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
                # A batch stored for longer than this (a database that is slow to come back)
                # hands the consumer's partitions to the others; see commit().
                max_poll_interval_ms=max_poll_interval_ms,
            )
        except KafkaError as error:
            raise SourceError(f"cannot reach Kafka at {bootstrap}: {error}") from error

    def batches(
        self,
        *,
        batch_size: int,
        max_lines: int | None = None,
        idle_seconds: float | None = None,
        stopped: Callable[[], bool] | None = None,
    ) -> Iterator[list[bytes]]:
        budget = LineBudget(max_lines, stopped=stopped)
        idle_since = waiting_since = time.monotonic()
        while not budget.exhausted:
            polled = self._consumer.poll(timeout_ms=500, max_records=budget.batch_size(batch_size))
            batch = [record.value for records in polled.values() for record in records if record.value is not None]
            if time.monotonic() - self._lag_reported_at >= 5:
                self._report_lag()
            if not batch and not self._consumer.assignment():
                # Joining the group is not idleness: a restarted consumer finished with
                # "0 lines" and 150,000 messages waiting. A join that never ends (other
                # consumers hold every partition) ends the run after a while all the same.
                idle_since = time.monotonic()
                if idle_seconds is not None and idle_since - waiting_since >= max(60.0, 4 * idle_seconds):
                    logger.warning("no partition of %s assigned to this consumer: stopping", self.topic)
                    return
                continue
            if not batch:
                if idle_seconds is not None and time.monotonic() - idle_since >= idle_seconds:
                    return
                continue
            idle_since = time.monotonic()
            self.done += len(batch)
            budget.spend(len(batch))
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
        """Commit the offsets of the batch just stored. If the group rebalanced meanwhile (a
        consumer joined or died, or this one took longer than ``max_poll_interval_ms``), Kafka
        refuses: the partitions may be another consumer's now, which reads them again from the
        last commit. The batch is in the database and storing is idempotent, so it is read
        twice and counted once; this consumer rejoins the group at its next poll instead of
        failing the run. (kafka-python raises RebalanceInProgressError where it knows it is
        rejoining, CommitFailedError where it learns so from the broker.)"""
        from kafka.errors import CommitFailedError, RebalanceInProgressError

        try:
            self._consumer.commit()
        except (CommitFailedError, RebalanceInProgressError) as error:
            metrics.COMMITS_REFUSED.inc()
            logger.warning(
                "offsets not committed, the group rebalanced during the batch (it is read again, stored once): %s",
                str(error).splitlines()[0][:200],
            )

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def source_open(spec: str, *, kafka_group: str, simulator_lines: Iterable[bytes] | None = None) -> LineSource:
    """Open ``kafka://HOST:PORT/TOPIC``, ``file:PATH`` (``file:-`` for standard input), or
    ``simulator`` (whose lines the caller passes in ``simulator_lines``)."""
    if spec.startswith(KAFKA_SCHEME):
        try:
            address = KafkaAddress.parse(spec)
        except ValueError as error:
            raise SourceError(str(error)) from None
        return KafkaSource(bootstrap=address.bootstrap, topic=address.topic, group=kafka_group)
    if spec.startswith("file:"):
        path = spec.removeprefix("file:")
        if not path:
            raise SourceError("bad file source: expected file:PATH or file:- for standard input")
        return FileSource(path)
    if spec == "simulator" and simulator_lines is not None:
        return IterableSource(simulator_lines, name="simulator")
    raise SourceError(f"unknown source {spec!r}: use kafka://HOST:PORT/TOPIC, file:PATH, file:- or simulator")
