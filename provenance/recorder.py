"""Recording every served recommendation without slowing the request path, and without losing
one when the worker is killed.

The view hands each row to ``recorder.record()``, which appends it to this process's spool file
(``provenance.spool``: durable once written, even if the process is then killed) and to a
bounded in-memory queue. A daemon thread writes the queue in batches (``bulk_create`` ignoring
duplicates, so a retried batch adds nothing; ``provenance.rollup`` then recounts their minutes),
then deletes the spool files whose rows are all in. If the database is away, the batch stays
queued and is retried with back-off; failures are counted. Past ``PROVENANCE_MAX_PENDING`` rows
the oldest are dropped from memory (and counted), not from disk: their spool files go to
recovery, so an outage can neither exhaust the worker's memory nor lose a row. ``flush()``
writes everything now (gunicorn's worker_exit hook and atexit call it). The same thread drains
the spool files of workers that died (``recover()``) every ``PROVENANCE_RECOVER_SECONDS``, and a
starting worker does at once (gunicorn's post_worker_init), so every answered request has
exactly one row, also after a SIGKILL during an outage, without a restart.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from itertools import islice

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from prometheus_client import Counter, Gauge

from core.background import ProcessThread
from core.db import connection_drop_if_broken
from provenance.models import Recommendation
from provenance.rollup import recommendations_insert
from provenance.spool import Spool, row_to_line, spool_recover

logger = logging.getLogger(__name__)

WRITTEN = Counter("recsite_provenance_written_total", "Recommendation rows written")
WRITE_FAILURES = Counter("recsite_provenance_write_failures_total", "Batches that failed to write (retried)")
DROPPED = Counter("recsite_provenance_dropped_total", "Rows dropped because the pending queue was full")
PENDING = Gauge("recsite_provenance_pending", "Rows waiting to be written", multiprocess_mode="livesum")


class RecommendationRecorder:
    """The queue and its writer thread. Limits not given here are read from settings when used
    (``PROVENANCE_MAX_PENDING``, ``PROVENANCE_BATCH_SIZE``, ``PROVENANCE_FLUSH_SECONDS``), so a
    test's ``settings`` override reaches the process-wide recorder too."""

    def __init__(
        self, *, max_pending: int | None = None, batch_size: int | None = None, interval: float | None = None
    ) -> None:
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._interval = interval
        self._pending: deque[Recommendation] = deque()
        self._spool = Spool()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._writer = ProcessThread(self._run, "provenance-recorder")
        self._stopping = False

    @property
    def max_pending(self) -> int:
        return self._max_pending if self._max_pending is not None else int(settings.PROVENANCE_MAX_PENDING)

    @property
    def batch_size(self) -> int:
        return self._batch_size if self._batch_size is not None else int(settings.PROVENANCE_BATCH_SIZE)

    @property
    def interval(self) -> float:
        return self._interval if self._interval is not None else float(settings.PROVENANCE_FLUSH_SECONDS)

    def record(self, row: Recommendation) -> None:
        """Spool and queue one row; never blocks on the database."""
        line = row_to_line(row)  # serialised outside the lock other requests wait on
        with self._lock:
            self._spool.append(line)  # before the answer leaves: survives a killed worker
            if len(self._pending) >= self.max_pending:
                self._pending.popleft()
                self._spool.dropped()
                DROPPED.inc()
            self._pending.append(row)
            PENDING.set(len(self._pending))
        self._writer.ensure()
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def clear(self) -> int:
        """Forget every queued row without writing it; returns how many. For a test that starts
        from an empty queue: in a worker, rows are only ever written or counted as dropped."""
        with self._lock:
            count = len(self._pending)
            self._pending.clear()
            self._spool.discard()
            PENDING.set(0)
        return count

    def recover(self) -> int:
        """Write the rows that workers killed on this host left in their spool files."""
        return spool_recover(batch_size=self.batch_size)

    def flush(self) -> bool:
        """Write everything queued, in this thread; True when the queue is empty afterwards.

        The spool is sealed first: every row queued now is in a sealed file, and once the queue
        has been emptied those files hold nothing the database lacks, so they are deleted.
        """
        with self._lock:
            if self._pending:
                self._spool.seal()
        while True:
            with self._lock:
                batch = list(islice(self._pending, self.batch_size))
                if not batch:
                    self._spool.release()
                    return True
            try:
                recommendations_insert(batch, batch_size=len(batch))
            except DatabaseError as error:
                WRITE_FAILURES.inc()
                logger.warning("could not write %d recommendation rows (kept for retry): %s", len(batch), error)
                connection_drop_if_broken()
                return False
            with self._lock:
                # Rows queued meanwhile sit behind the batch; a drop may have taken its head.
                for row in batch:
                    if self._pending and self._pending[0] is row:
                        self._pending.popleft()
                PENDING.set(len(self._pending))
            WRITTEN.inc(len(batch))

    def stop(self) -> None:
        """Stop the writer thread after one last flush."""
        self._stopping = True
        self._wake.set()
        self._writer.join(timeout=30)
        self._stopping = False

    def _run(self) -> None:
        delay = self.interval
        recover_at = time.monotonic() + float(settings.PROVENANCE_RECOVER_SECONDS)
        while not self._stopping:
            self._wake.wait(timeout=delay)
            self._wake.clear()
            try:
                close_old_connections()
                written = self.flush()
                delay = self.interval if written else min(delay * 2, 30.0)
                if written and time.monotonic() >= recover_at:
                    # The database answers again: what dead workers (or this one's dropped
                    # rows) left on disk goes in too.
                    recover_at = time.monotonic() + float(settings.PROVENANCE_RECOVER_SECONDS)
                    self.recover()
            except DatabaseError as error:
                logger.warning("could not recover spooled provenance rows (retried): %s", error)
                connection_drop_if_broken()
            except Exception:  # the writer must outlive any single failure
                logger.exception("provenance writer failed; retrying")
                delay = min(delay * 2, 30.0)


recorder = RecommendationRecorder()
atexit.register(recorder.flush)
