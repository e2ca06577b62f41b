"""Ingesting the platform's event stream into the database.

``stream_ingest_batch`` writes one batch of raw lines in one transaction and is idempotent:
ratings are unique on (viewer, movie, time), watches merge minute bitmaps, observed
recommendations and rejected lines are unique on a hash of their content. A consumer that
crashes after writing but before committing its Kafka offsets replays the batch harmlessly.

``stream_consume`` drives a source batch by batch, retrying a batch whose write fails because
the database went away, splitting one that fails for any other reason until the lines at fault
are found (they are kept as rejected lines), and committing the source's position only after
the batch is stored.
"""

from __future__ import annotations

import hashlib
import logging
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from catalog.identifiers import title_year_from_slug
from catalog.models import Movie, Rating, Viewer, Watch
from core.db import bulk_upsert, connection_drop_if_broken, database_answers, is_lock_conflict
from core.locks import lock_holder_is_dead, lock_holder_is_here, lock_holder_new
from core.logcontext import log_context, new_id
from stream import metrics
from stream.models import IngestRun, ObservedRecommendation, RejectedLine, RejectionOverflow
from stream.parsing import RateEvent, RecommendationEvent, Rejection, WatchEvent, parse_line
from stream.sources import LineSource, SourceError

logger = logging.getLogger(__name__)

RAW_KEEP_CHARS = 2000
# A line that parsed but that the database refused even alone (see _ingest_resilient).
UNSTORABLE = "unstorable"


@dataclass
class KnownIds:
    """A cache of viewer ids and movie ids already in the database, so steady-state batches skip
    the lookups.

    Only updated after a batch commits: a rolled-back batch must not leave ids here that the
    database does not have.
    """

    viewers: set[int] = field(default_factory=set)
    movies: dict[str, int] = field(default_factory=dict)
    max_entries: int = 2_000_000

    def trim(self) -> None:
        if len(self.viewers) > self.max_entries:
            self.viewers.clear()
        if len(self.movies) > self.max_entries:
            self.movies.clear()


@dataclass
class BatchResult:
    lines: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return sum(self.by_reason.values())

    def merged(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            lines=self.lines + other.lines,
            by_kind=self.by_kind + other.by_kind,
            by_reason=self.by_reason + other.by_reason,
        )


def stream_ingest_batch(
    *, lines: Sequence[bytes | str], source: str = "", known: KnownIds | None = None
) -> BatchResult:
    """Parse and store one batch of lines in one transaction (see the module docstring)."""
    known = known if known is not None else KnownIds()
    max_length = settings.STREAM_MAX_LINE_BYTES
    latest = timezone.now() + timedelta(seconds=settings.STREAM_MAX_CLOCK_SKEW_SECONDS)
    parsed = [parse_line(line, max_length=max_length, latest=latest) for line in lines]
    result = BatchResult(lines=len(lines))
    watches: list[WatchEvent] = []
    rates: list[RateEvent] = []
    recommendations: list[RecommendationEvent] = []
    rejections: list[Rejection] = []
    for item in parsed:
        if isinstance(item, WatchEvent):
            watches.append(item)
        elif isinstance(item, RateEvent):
            rates.append(item)
        elif isinstance(item, RecommendationEvent):
            recommendations.append(item)
        else:
            rejections.append(item)
            result.by_reason[item.reason] += 1
            continue
        result.by_kind[item.kind] += 1

    events: list[WatchEvent | RateEvent | RecommendationEvent] = [*watches, *rates, *recommendations]
    with transaction.atomic():
        new_viewers = _ensure_viewers({event.viewer_id for event in events} - known.viewers)
        new_movies = _ensure_movies(
            ({event.movie for event in watches} | {event.movie for event in rates}) - known.movies.keys()
        )
        movie_ids = {**known.movies, **new_movies}
        _store_ratings(rates, movie_ids)
        _store_watches(watches, movie_ids)
        _store_recommendations(recommendations)
        _store_rejections(rejections, source)

    known.viewers |= new_viewers
    known.movies.update(new_movies)
    known.trim()
    for kind, count in result.by_kind.items():
        metrics.EVENTS_INGESTED.labels(kind=kind).inc(count)
    for reason, count in result.by_reason.items():
        metrics.LINES_REJECTED.labels(reason=reason).inc(count)
    return result


def _ensure_viewers(ids: set[int]) -> set[int]:
    if ids:
        Viewer.objects.bulk_create([Viewer(id=viewer_id) for viewer_id in ids], ignore_conflicts=True, batch_size=2000)
    return ids


def _ensure_movies(slugs: set[str]) -> dict[str, int]:
    if not slugs:
        return {}
    new = []
    for slug in slugs:
        title, year = title_year_from_slug(slug)
        new.append(Movie(slug=slug, title=title[:300], year=year))
    Movie.objects.bulk_create(new, ignore_conflicts=True, batch_size=2000)
    return dict(Movie.objects.filter(slug__in=slugs).values_list("slug", "id"))


def _store_ratings(events: list[RateEvent], movie_ids: dict[str, int]) -> None:
    if not events:
        return
    unique = {(e.viewer_id, movie_ids[e.movie], e.at): e.score for e in events}
    Rating.objects.bulk_create(
        [
            Rating(viewer_id=viewer_id, movie_id=movie_id, rated_at=at, score=score)
            for (viewer_id, movie_id, at), score in unique.items()
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )


def _store_watches(events: list[WatchEvent], movie_ids: dict[str, int]) -> None:
    """Fold per-minute lines into one row per (viewer, movie) and merge them into the stored rows.

    Two consumers can hold the same (viewer, movie) at once: while a rebalance hands a partition
    over, its old owner may still be storing a batch the new owner reads again. A merge must then
    start from the other's row, not from nothing, so every row is locked before it is merged: the
    rows that exist are locked as read, the missing ones are inserted empty (a consumer inserting
    the same one waits for this transaction) and then locked as read, as the other left them.
    """
    if not events:
        return
    minutes: dict[tuple[int, int], set[int]] = defaultdict(set)
    first: dict[tuple[int, int], datetime] = {}
    last: dict[tuple[int, int], datetime] = {}
    for event in events:
        key = (event.viewer_id, movie_ids[event.movie])
        minutes[key].add(event.minute)
        first[key] = min(first.get(key, event.at), event.at)
        last[key] = max(last.get(key, event.at), event.at)

    existing = _watches_locked(set(minutes))
    missing = sorted(key for key in minutes if key not in existing)
    if missing:
        Watch.objects.bulk_create(
            [Watch(viewer_id=v, movie_id=m, first_seen_at=first[v, m], last_seen_at=last[v, m]) for v, m in missing],
            ignore_conflicts=True,
            batch_size=2000,
        )
        existing |= _watches_locked(set(missing))
    merged = []
    for key, seen in minutes.items():
        watch = existing[key]
        watch.merge(minutes=seen, first_seen_at=first[key], last_seen_at=last[key])
        merged.append(watch)
    bulk_upsert(
        Watch,
        merged,
        unique_fields=["viewer", "movie"],
        update_fields=["minutes_bitmap", "minutes_watched", "max_minute", "first_seen_at", "last_seen_at"],
    )


def _watches_locked(keys: set[tuple[int, int]]) -> dict[tuple[int, int], Watch]:
    """The stored watches of ``keys``, locked until the transaction ends (on engines that lock rows)."""
    viewer_ids = {viewer_id for viewer_id, _ in keys}
    movie_pks = {movie_id for _, movie_id in keys}
    # A superset of the rows asked for (every pair of these viewers and movies), filtered here;
    # ordered, so that two consumers lock the rows they share in the same order.
    rows = Watch.objects.select_for_update().filter(viewer_id__in=viewer_ids, movie_id__in=movie_pks).order_by("pk")
    return {(watch.viewer_id, watch.movie_id): watch for watch in rows if (watch.viewer_id, watch.movie_id) in keys}


def _content_hash(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(str(part) for part in parts).encode("utf-8", "replace")).hexdigest()


def _store_recommendations(events: list[RecommendationEvent]) -> None:
    if not events:
        return
    rows = {}
    for e in events:
        digest = _content_hash(
            e.at.isoformat(), e.viewer_id, e.host, e.status, ",".join(e.results), e.error, e.response_ms
        )
        rows[digest] = ObservedRecommendation(
            requested_at=e.at,
            viewer_id=e.viewer_id,
            host=e.host,
            status=e.status,
            results=",".join(e.results),
            result_count=len(e.results),
            error=e.error,
            response_ms=e.response_ms,
            event_hash=digest,
        )
    ObservedRecommendation.objects.bulk_create(list(rows.values()), ignore_conflicts=True, batch_size=1000)


def _store_rejections(rejections: list[Rejection], source: str) -> None:
    """Keep rejected lines verbatim up to ``STREAM_REJECTED_KEEP``; count the rest per reason.

    A line already kept is not counted again, so re-ingesting a file changes nothing. Past the
    bound, lines are only counted (a flood of garbage must not fill the disk), and a replay of
    those is counted again: the price of not storing them.
    """
    if not rejections:
        return
    unique = {_content_hash(r.line): r for r in rejections}
    kept = set(RejectedLine.objects.filter(line_hash__in=unique.keys()).values_list("line_hash", flat=True))
    new = [(digest, r) for digest, r in unique.items() if digest not in kept]
    if not new:
        return
    room = max(settings.STREAM_REJECTED_KEEP - RejectedLine.objects.count(), 0)
    now = timezone.now()
    RejectedLine.objects.bulk_create(
        [
            RejectedLine(
                line_hash=digest,
                reason=r.reason,
                detail=r.detail[:200],
                raw=r.line[:RAW_KEEP_CHARS],
                length=len(r.line),
                source=source[:300],
                received_at=now,
            )
            for digest, r in new[:room]
        ],
        ignore_conflicts=True,
    )
    overflow = Counter(r.reason for _, r in new[room:])
    for reason, count in overflow.items():
        RejectionOverflow.objects.get_or_create(reason=reason)
        RejectionOverflow.objects.filter(reason=reason).update(count=F("count") + count, last_at=now)


def rejections_total() -> int:
    kept = RejectedLine.objects.count()
    overflow = sum(RejectionOverflow.objects.values_list("count", flat=True))
    return kept + overflow


# --- Driving a source ----------------------------------------------------------------------


class StopRequested(Exception):
    """The consumer was asked to stop (SIGTERM, SIGINT) while it waited for input."""


class ConsumerStop:
    """A stop request from a signal, honoured where no batch is lost.

    Install ``handle`` as the signal handler. While a batch is being written and committed
    (``busy``) it only notes the request, and the consumer stops after that batch; while the
    consumer waits for input (a blocking read, a Kafka poll) it raises ``StopRequested`` at once,
    since nothing is in flight: lines read but not yet written were not committed either, and are
    read again by the next consumer.
    """

    def __init__(self) -> None:
        self.requested = ""
        self.busy = False

    def handle(self, signum: int, frame: object) -> None:
        self.requested = signal.Signals(signum).name
        if not self.busy:
            raise StopRequested(f"stopped by {self.requested}")


def stream_consume(
    *,
    source: LineSource,
    max_events: int | None = None,
    idle_seconds: float | None = None,
    batch_size: int | None = None,
    retries: int = 5,
    on_batch: Callable[[IngestRun, BatchResult], None] | None = None,
    stop: ConsumerStop | None = None,
) -> IngestRun:
    """Ingest ``source`` until it ends, ``max_events`` lines are read, it is idle that long, or
    ``stop`` is requested (the run is then recorded as stopped, with what it stored).

    1. Read a batch from the source.
    2. Write it (``stream_ingest_batch``), retrying with back-off if the database is away.
    3. Add it to the run's counts, saved.
    4. Only then tell the source the batch is done (Kafka commits its offsets here).
    """
    batch_size = batch_size or settings.STREAM_BATCH_SIZE
    stop = stop or ConsumerStop()
    ingest_runs_abandon()
    now = timezone.now()
    run = IngestRun.objects.create(source=source.name, started_at=now, updated_at=now, holder=lock_holder_new())
    known = KnownIds()
    logged = time.monotonic()
    try:

        def between_reads() -> bool:
            _run_heartbeat(run)
            return bool(stop.requested)

        batches = source.batches(
            batch_size=batch_size, max_lines=max_events, idle_seconds=idle_seconds, stopped=between_reads
        )
        for lines in batches:
            batch_id = new_id()[:12]
            stop.busy = True
            with log_context(batch_id=batch_id):
                result = _ingest_resilient(lines=lines, source=source.name, known=known, retries=retries)
                # Counted before the offsets are committed: a consumer killed between the two
                # leaves its batch to be read again and counted twice, never stored uncounted.
                _add_to_run(run, result)
                source.commit()
                logger.debug("batch stored: %d lines, %d rejected", result.lines, result.rejected)
                # By time, not by batches: a live source hands over batches of a line or two.
                if time.monotonic() - logged >= PROGRESS_LOG_SECONDS:
                    logged = time.monotonic()
                    logger.info("ingested %s lines so far (%s rejected)", f"{run.lines:,}", f"{run.rejected:,}")
            stop.busy = False
            if on_batch:
                on_batch(run, result)
            if stop.requested:
                raise StopRequested(f"stopped by {stop.requested}")
        if stop.requested:  # the source saw the stop between two reads
            raise StopRequested(f"stopped by {stop.requested}")
    except StopRequested as stopped:
        run.status, run.error = IngestRun.Status.STOPPED, str(stopped)
        logger.info("%s after %s lines", stopped, f"{run.lines:,}")
    except BaseException as error:
        run.status = IngestRun.Status.FAILED
        run.error = f"{type(error).__name__}: {error}"[:2000]
        raise
    else:
        run.status = IngestRun.Status.FINISHED
    finally:
        source.close()
        run.finished_at = timezone.now()
        # The run's last word: after a database restart it must not stay "running" for ever.
        _save_run(run, patience_seconds=FINAL_SAVE_PATIENCE_SECONDS)
    return run


PROGRESS_LOG_SECONDS = 60.0
# How often a live consumer's run says so, idle or not (settings.STREAM_RUN_STALE_SECONDS).
RUN_HEARTBEAT_SECONDS = 30.0
# Inside the ingest container's stop grace period (60 s), with room for the batch in hand.
FINAL_SAVE_PATIENCE_SECONDS = 40.0
# Long enough to reconnect once after a dropped connection; a database that stays away stops
# the next batch's write anyway.
BATCH_SAVE_PATIENCE_SECONDS = 1.0


# Lock conflicts come from two owners of one partition for the moment a rebalance takes; more
# than this in a row is something else, and the batch is retried or split as any failure.
LOCK_CONFLICT_RETRIES = 10


class DatabaseAway(OperationalError):
    """The database did not answer for the whole retry budget: the consumer stops, uncommitted."""


def _ingest_resilient(*, lines: Sequence[bytes | str], source: str, known: KnownIds, retries: int) -> BatchResult:
    """Store one batch so that no single line can stop ingestion.

    1. Write the batch, retrying while the database is away (``_ingest_with_retries``); if it
       stays away, raise ``DatabaseAway``: nothing is committed and the batch is read again.
    2. If the write fails for any other reason (a line the database refuses, a bug), split the
       batch in halves and store each, down to single lines: a line that still fails is kept as
       a rejected line (``unstorable``, with the error), and every other line is stored.
    """
    try:
        return _ingest_with_retries(lines=lines, source=source, known=known, retries=retries)
    except DatabaseAway:
        raise
    except Exception as error:  # noqa: BLE001 - whatever else failed is about the lines: find them
        if len(lines) == 1:
            return _store_unstorable(lines[0], error=error, source=source)
        logger.warning("a batch of %d lines failed (%s: %s); splitting it", len(lines), type(error).__name__, error)
        middle = len(lines) // 2
        first = _ingest_resilient(lines=lines[:middle], source=source, known=known, retries=retries)
        return first.merged(_ingest_resilient(lines=lines[middle:], source=source, known=known, retries=retries))


def _ingest_with_retries(*, lines: Sequence[bytes | str], source: str, known: KnownIds, retries: int) -> BatchResult:
    """Write a batch; retry with back-off while the database does not answer, and once at once
    when it does (a connection it dropped, a concurrent writer that inserted the same new row
    first). A failure that repeats while the database answers is the lines' own: raised."""
    delay = 0.5
    failed_while_answering = 0
    for attempt in range(1, retries + 2):
        started = time.perf_counter()
        try:
            result = _ingest_past_lock_conflicts(lines=lines, source=source, known=known)
        except (OperationalError, InterfaceError, IntegrityError) as error:
            metrics.BATCH_FAILURES.inc()
            if database_answers():
                failed_while_answering += 1
                if failed_while_answering > 1:
                    raise
                logger.warning("batch write failed (%s); retrying once", error)
                continue
            if attempt > retries:
                raise DatabaseAway(f"the database did not answer after {attempt} attempts: {error}") from error
            logger.warning(
                "database unavailable (attempt %d of %d), retrying in %.1fs: %s", attempt, retries + 1, delay, error
            )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return result
    raise DatabaseAway("the database did not answer")


def _ingest_past_lock_conflicts(*, lines: Sequence[bytes | str], source: str, known: KnownIds) -> BatchResult:
    """Write a batch, running it again when it loses a lock conflict to another consumer holding
    rows of it (two owners of one partition while a rebalance hands it over): the transaction
    was rolled back whole, so running it again stores it once. Conflicts past a bound are not a
    rebalance; they are raised as any other failure."""
    conflicts = 0
    while True:
        try:
            return stream_ingest_batch(lines=lines, source=source, known=known)
        except OperationalError as error:
            if not is_lock_conflict(error) or conflicts == LOCK_CONFLICT_RETRIES:
                raise
            conflicts += 1
            metrics.BATCH_LOCK_CONFLICTS.inc()
            logger.info("batch lost a lock conflict (%s); running it again", error)
            time.sleep(random.uniform(0.05, 0.25) * conflicts)


def _store_unstorable(line: bytes | str, *, error: Exception, source: str) -> BatchResult:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    detail = f"{type(error).__name__}: {error}"
    logger.error("a line could not be stored; kept as rejected (%s): %s", detail, text[:200])
    with transaction.atomic():
        _store_rejections([Rejection(reason=UNSTORABLE, detail=detail, line=text.rstrip("\r\n"))], source)
    metrics.LINES_REJECTED.labels(reason=UNSTORABLE).inc()
    return BatchResult(lines=1, by_reason=Counter({UNSTORABLE: 1}))


def _add_to_run(run: IngestRun, result: BatchResult) -> None:
    run.lines += result.lines
    run.watches += result.by_kind["watch"]
    run.ratings += result.by_kind["rate"]
    run.recommendations += result.by_kind["recommendation"]
    run.rejected += result.rejected
    run.batches += 1
    # Saved with every batch, so a consumer killed next leaves the counts of what it stored.
    run.updated_at = timezone.now()
    _save_run(run, patience_seconds=BATCH_SAVE_PATIENCE_SECONDS)


def ingest_runs_abandon() -> list[IngestRun]:
    """Mark abandoned the runs still ``running`` whose consumer is gone, with the counts they
    last saved; returns them. A consumer of this host is gone when its process is (a SIGKILL, the
    out-of-memory killer); one of another host (another replica's container, or this container
    before it was recreated) when its run has shown no sign of life for
    ``STREAM_RUN_STALE_SECONDS``: a live consumer's run does every ``RUN_HEARTBEAT_SECONDS``."""
    abandoned = []
    stale = timezone.now() - timedelta(seconds=settings.STREAM_RUN_STALE_SECONDS)
    for run in IngestRun.objects.filter(status=IngestRun.Status.RUNNING).exclude(holder=""):
        if lock_holder_is_dead(run.holder, acquired_at=run.started_at):
            why = f"its process ({run.holder}) is gone"
        elif not lock_holder_is_here(run.holder) and (run.updated_at or run.started_at) < stale:
            why = f"its consumer ({run.holder}) showed no sign of life for {settings.STREAM_RUN_STALE_SECONDS:g} s"
        else:
            continue
        run.status = IngestRun.Status.ABANDONED
        run.finished_at = run.updated_at or run.started_at
        run.error = f"{why}; the counts are what it had stored"
        run.save(update_fields=["status", "finished_at", "error"])
        logger.warning("ingest run %s abandoned: %s", run.pk, run.error)
        abandoned.append(run)
    return abandoned


def _run_heartbeat(run: IngestRun) -> None:
    """Between two reads, idle or not: the run's ``updated_at`` kept within
    ``RUN_HEARTBEAT_SECONDS`` (each stored batch saves it too). A beat missed while the database
    is away is harmless: the next one tries again, well inside the stale bound."""
    now = timezone.now()
    if run.updated_at is not None and (now - run.updated_at).total_seconds() < RUN_HEARTBEAT_SECONDS:
        return
    run.updated_at = now
    try:
        IngestRun.objects.filter(pk=run.pk).update(updated_at=now)
    except DatabaseError as error:
        logger.warning("the run's heartbeat was not saved (%s); the next one tries again", error)


def _save_run(run: IngestRun, *, patience_seconds: float = 0.0) -> None:
    """Save the run record; while the database is away, retry for ``patience_seconds``."""
    deadline = time.monotonic() + patience_seconds
    delay = 0.5
    while True:
        try:
            run.save()
            return
        except (OperationalError, InterfaceError):
            connection_drop_if_broken()
            if time.monotonic() + delay > deadline:
                # The run record is bookkeeping; losing one update must not fail the ingestion.
                logger.exception("could not save the ingest run record")
                return
            logger.warning("the database is away; saving the ingest run again in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def stream_topic_ensure(*, bootstrap: str, topic: str, partitions: int, timeout_seconds: float = 30.0) -> bool:
    """Create ``topic`` unless it exists; True when it was created. Done before the consumer
    subscribes, so that a fresh stack's consumer finds its topic rather than logging errors
    until the first event creates it."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=int(timeout_seconds * 1000))
    except KafkaError as error:
        raise SourceError(f"cannot reach Kafka at {bootstrap}: {error}") from error
    try:
        if topic in admin.list_topics():
            return False
        admin.create_topics([NewTopic(name=topic, num_partitions=partitions, replication_factor=1)])
        return True
    except TopicAlreadyExistsError:
        return False  # created a moment ago by another process (or Kafka's auto-creation)
    finally:
        admin.close()


def stream_lag(*, bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """Per partition of ``topic``: how many events ``group`` has not yet committed (stored)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        # A consumer that names the group but never subscribes reads its committed offsets
        # without joining it (no rebalance of the running consumers).
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False)
    except KafkaError as error:
        raise SourceError(f"cannot reach Kafka at {bootstrap}: {error}") from error
    try:
        partitions = [TopicPartition(topic, number) for number in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
        return {partition.partition: ends[partition] - (consumer.committed(partition) or 0) for partition in partitions}
    finally:
        consumer.close(autocommit=False)
