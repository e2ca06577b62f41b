"""Reads for the console's pages: every figure and chart a page shows comes from here.

Each chart's data is a ``core.charts.Chart``, built from aggregates the database computes
(grouped counts, latency histograms), never from a Python loop over millions of rows.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import (
    Count,
    DateTimeField,
    ExpressionWrapper,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from catalog.models import Movie, Rating, Viewer, Watch
from catalog.selectors import movie_titles
from core.charts import Chart, Series, time_axis
from fairness.models import FairnessReport
from fairness.selectors import fairness_report_latest
from provenance.models import Recommendation, ServedMinute
from provenance.rollup import LATENCY_BOUNDS_MS, minute_start
from recommender.gate import GateCheck
from recommender.models import DataSnapshot, ModelStatusChange, ModelVersion
from releases.analysis import MetricCheck
from releases.models import AnalysisRun, Release, ReleaseEvent
from serving.models import ArtifactFault
from stream.models import IngestRun, RejectedLine, RejectionOverflow

POOLS: tuple[str, ...] = (Recommendation.Pool.STABLE.value, Recommendation.Pool.CANARY.value)


# --- What serves now -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingNow:
    stable: ModelVersion | None
    canary: ModelVersion | None
    release: Release | None
    step: int  # 1-based
    steps: int
    in_step: timedelta | None
    last_check: AnalysisRun | None
    checks: list[MetricCheck]


def serving_now(now: datetime | None = None) -> ServingNow:
    now = now or timezone.now()
    slots = {
        version.serving_slot: version
        for version in ModelVersion.objects.filter(serving_slot__isnull=False).select_related("snapshot")
    }
    release = (
        Release.objects.filter(state__in=Release.ACTIVE_STATES).select_related("candidate", "stable").first()
        or Release.objects.select_related("candidate", "stable").first()
    )
    last_check = release.analysis_runs.first() if release is not None else None
    return ServingNow(
        stable=slots.get("stable"),
        canary=slots.get("canary"),
        release=release,
        step=(release.step_index + 1) if release else 0,
        steps=len(release.steps) if release else 0,
        in_step=(now - release.step_started_at) if release and release.is_active and release.step_started_at else None,
        last_check=last_check,
        checks=check_rows(last_check) if last_check is not None and release is not None else [],
    )


def live_state(*, release_id: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """What a live page polls for: what serves, where the release (the one shown, or the one
    that matters now) stands, its last check and decision, and the answers of the last minute.
    ``changed`` is a fingerprint of everything but the answers: a page reloads when it moves."""
    now = now or timezone.now()
    slots = dict(ModelVersion.objects.filter(serving_slot__isnull=False).values_list("serving_slot", "version"))
    releases = Release.objects.all()
    release = (
        releases.filter(pk=release_id).first()
        if release_id is not None
        else releases.filter(state__in=Release.ACTIVE_STATES).first() or releases.first()
    )
    shown: dict[str, Any] | None = None
    if release is not None:
        last_check = release.analysis_runs.values_list("pk", "verdict").first()
        last_event = release.events.order_by("-at", "-id").values_list("pk", flat=True).first()
        shown = {
            "id": release.pk,
            "state": release.state,
            "step": release.step_index + 1,
            "steps": len(release.steps),
            "weight": release.weight,
            "last_check": last_check[0] if last_check else None,
            "last_verdict": last_check[1] if last_check else None,
            "last_decision": last_event,
        }
    state = {"stable": slots.get("stable"), "canary": slots.get("canary"), "release": shown}
    answers = Recommendation.objects.filter(served_at__gte=now - timedelta(minutes=1), served_at__lt=now)
    return {
        **state,
        "changed": hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16],
        "answers_last_minute": answers.count(),
        "at": now.isoformat(timespec="seconds"),
        "poll_seconds": settings.CONSOLE_LIVE_SECONDS,
    }


def check_rows(run: AnalysisRun) -> list[MetricCheck]:
    """A check's rows as it stored them (Kayenta's table: each metric, both pools, its bound
    and outcome), from which its verdict was derived."""
    return [MetricCheck.from_dict(row) for row in run.checks]


def fairness_of_serving(serving: ServingNow) -> list[FairnessReport]:
    """The latest fairness report of each version serving now (stable, canary)."""
    reports = [fairness_report_latest(version) for version in (serving.stable, serving.canary) if version is not None]
    return [report for report in reports if report is not None]


# --- Traffic, per pool -----------------------------------------------------------------------


def quantile_from_histogram(counts: list[int], quantile: float = 0.99) -> float | None:
    """The ``quantile`` of a latency histogram (counts per ``LATENCY_BOUNDS_MS`` bucket, the last
    one unbounded), interpolated linearly inside its bucket as Prometheus' histogram_quantile
    does; the top bound when it falls in the unbounded bucket."""
    total = sum(counts)
    if not total:
        return None
    rank = quantile * total
    cumulative = 0
    for i, count in enumerate(counts):
        if cumulative + count >= rank and count:
            if i == len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            low = 0.0 if i == 0 else float(LATENCY_BOUNDS_MS[i - 1])
            return low + (LATENCY_BOUNDS_MS[i] - low) * (rank - cumulative) / count
        cumulative += count
    return float(LATENCY_BOUNDS_MS[-1])


@dataclass(frozen=True)
class PoolTraffic:
    labels: list[str]
    requests_per_minute: dict[str, list[float | None]]
    p99_ms: dict[str, list[float | None]]
    error_rate: dict[str, list[float | None]]


def pool_traffic(*, since: datetime, until: datetime, bucket_minutes: int = 5) -> PoolTraffic:
    """Requests per minute, p99 latency and the share of 5xx answers, per pool and time bucket,
    over the minutes that start in [since, until): read from the per-minute rollup
    (``provenance.rollup``), so three hours are at most 360 rows whatever the traffic."""
    step = timedelta(minutes=bucket_minutes)
    start = minute_start(since)
    buckets = max(1, int((until - start) / step) + (1 if (until - start) % step else 0))
    histogram = {pool: [[0] * (len(LATENCY_BOUNDS_MS) + 1) for _ in range(buckets)] for pool in POOLS}
    errors = {pool: [0] * buckets for pool in POOLS}
    minutes = ServedMinute.objects.filter(minute__gte=start, minute__lt=until, pool__in=POOLS)
    for minute, pool, counts, failed in minutes.values_list("minute", "pool", "latency_counts", "errors"):
        index = min(buckets - 1, int((minute - start) / step))
        for bucket, count in enumerate(counts):
            histogram[pool][index][bucket] += count
        errors[pool][index] += failed
    labels = [timezone.localtime(start + i * step).strftime("%H:%M") for i in range(buckets)]
    requests: dict[str, list[float | None]] = {
        pool: [sum(counts) / bucket_minutes for counts in histogram[pool]] for pool in POOLS
    }
    return PoolTraffic(
        labels=labels,
        requests_per_minute={pool: [_rounded(value) for value in values] for pool, values in requests.items()},
        p99_ms={pool: [_rounded(quantile_from_histogram(counts)) for counts in histogram[pool]] for pool in POOLS},
        error_rate={
            pool: [
                round(errors[pool][i] / sum(counts), 4) if sum(counts) else None
                for i, counts in enumerate(histogram[pool])
            ]
            for pool in POOLS
        },
    )


def pool_traffic_recent(*, hours: int, now: datetime) -> PoolTraffic:
    """``pool_traffic`` over the last ``hours`` up to and including the current minute."""
    until = minute_start(now) + timedelta(minutes=1)
    return pool_traffic(since=until - timedelta(hours=hours), until=until)


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def traffic_charts(traffic: PoolTraffic, *, prefix: str = "traffic") -> list[Chart]:
    hint = "No answers in this period: the provenance table fills as /recommend is called."
    return [
        Chart(
            f"{prefix}-{key}",
            title,
            traffic.labels,
            [Series(pool, figures[pool]) for pool in POOLS],
            unit=unit,
            empty_hint=hint,
            x_title=time_axis(),
        )
        for key, title, figures, unit in (
            ("requests", "Requests per minute", traffic.requests_per_minute, "requests/min"),
            ("p99", "p99 latency", traffic.p99_ms, "ms"),
            ("errors", "Error rate (5xx)", traffic.error_rate, "share of answers"),
        )
    ]


# --- Ingestion -------------------------------------------------------------------------------


def ingest_chart(limit: int = 30) -> Chart:
    runs = list(IngestRun.objects.order_by("-started_at")[:limit])[::-1]
    return Chart(
        "ingest-rate",
        f"Ingest runs (last {limit})",
        [timezone.localtime(run.started_at).strftime("%Y-%m-%d %H:%M:%S") for run in runs],
        [
            Series("lines/s", [_rounded(run.lines_per_second, 0) for run in runs], kind="line"),
            Series("rejected lines", [run.rejected for run in runs], axis="y2", kind="bar"),
        ],
        unit="lines/s",
        unit_y2="rejected",
        empty_hint="Nothing ingested yet: run consume_stream.",
        x_title=time_axis("run started"),
    )


def rejections_by_reason() -> list[tuple[str, int]]:
    """Rejected lines per reason: those kept, plus those only counted once the store was full."""
    counts: dict[str, int] = defaultdict(int)
    for reason, count in RejectedLine.objects.values_list("reason").annotate(count=Count("id")).order_by():
        counts[reason] += count
    for reason, count in RejectionOverflow.objects.values_list("reason", "count"):
        counts[reason] += count
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def rejections_chart() -> Chart:
    reasons = rejections_by_reason()
    return Chart(
        "rejections",
        "Rejected lines by reason",
        [reason for reason, _ in reasons],
        [Series("lines", [count for _, count in reasons])],
        kind="bar",
        unit="lines",
        empty_hint="No line has been rejected.",
        x_title="reason",
    )


# --- The task queue --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleState:
    name: str
    func: str
    next_run: datetime | None
    overdue: bool
    last_started: datetime | None
    last_success: bool | None


@dataclass(frozen=True)
class QueueHealth:
    schedules: list[ScheduleState]
    queued: int
    alive: bool
    next_training: datetime | None

    @property
    def summary(self) -> str:
        if not self.schedules:
            return "no schedules: run manage.py setup_schedules"
        failed = [state.name for state in self.schedules if state.last_success is False]
        if not self.alive:
            return "not running: a schedule is overdue (start manage.py qcluster)"
        if failed:
            return f"running, but the last run failed for: {', '.join(failed)} (see the failed tasks)"
        return "running: every schedule ran on time and its last run succeeded"


OVERDUE_AFTER = timedelta(minutes=3)


def queue_health(now: datetime | None = None) -> QueueHealth:
    """django-q2's cluster seen from its tables: a schedule whose next run is minutes in the past
    means no cluster is taking them (its own statistics live in a per-process cache here)."""
    now = now or timezone.now()
    schedules = list(Schedule.objects.order_by("name"))
    tasks = {task.id: task for task in Task.objects.filter(id__in=[s.task for s in schedules if s.task])}
    states = []
    for schedule in schedules:
        task = tasks.get(schedule.task or "")
        states.append(
            ScheduleState(
                name=schedule.name or schedule.func,
                func=schedule.func,
                next_run=schedule.next_run,
                overdue=schedule.next_run is not None and schedule.next_run < now - OVERDUE_AFTER,
                last_started=task.started if task else None,
                last_success=task.success if task else None,
            )
        )
    training = next((s for s in schedules if s.func == "recommender.tasks.model_retrain"), None)
    return QueueHealth(
        schedules=states,
        queued=OrmQ.objects.count(),
        alive=bool(states) and not any(state.overdue for state in states),
        next_training=training.next_run if training else None,
    )


def artifact_faults_recent(*, now: datetime | None = None, hours: int = 24) -> list[ArtifactFault]:
    """Damaged artifacts the serving hosts found in the last ``hours``, newest first."""
    since = (now or timezone.now()) - timedelta(hours=hours)
    faults = ArtifactFault.objects.filter(detected_at__gte=since).select_related("model_version", "stand_in")
    return list(faults[:20])


# --- Model versions --------------------------------------------------------------------------


def gate_rows(version: ModelVersion) -> list[GateCheck]:
    """The gate's checks as the gate stored them when it decided (``recommender.gate``)."""
    return [GateCheck.from_dict(row) for row in version.gate.get("checks", [])]


@dataclass(frozen=True)
class SelectionRow:
    ranker: str
    params: str
    ndcg: float | None
    seconds: float
    chosen: bool
    error: str


def selection_rows(version: ModelVersion) -> list[SelectionRow]:
    """The candidates model selection measured for this version, as its training stored them."""
    selection = version.metrics.get("selection") or {}
    chosen = selection.get("chosen") or {}
    return [
        SelectionRow(
            ranker=str(candidate["ranker"]),
            params=", ".join(f"{key}={value}" for key, value in sorted(candidate.get("params", {}).items())),
            ndcg=candidate.get("ndcg@10"),
            seconds=float(candidate.get("seconds") or 0.0),
            chosen=(candidate["ranker"], candidate.get("params")) == (chosen.get("ranker"), chosen.get("params")),
            error=str(candidate.get("error", "")),
        )
        for candidate in selection.get("candidates", [])
    ]


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


METRICS = (
    ("rmse", "RMSE", "lower is better"),
    ("mae", "MAE", "lower is better"),
    ("ndcg@10", "NDCG@10", "higher is better"),
    ("precision@10", "precision@10", "higher is better"),
    ("recall@10", "recall@10", "higher is better"),
    ("coverage@20", "catalogue coverage of the lists", "higher is better"),
)


@dataclass(frozen=True)
class MetricRow:
    name: str
    direction: str
    value: str
    stable: str
    popularity: str


def metric_rows(version: ModelVersion, stable: ModelVersion | None) -> list[MetricRow]:
    """Each metric of ``version`` beside the stable version's and the popularity baseline's."""
    popularity = version.metrics.get("popularity", {})
    rows = []
    for key, label, direction in METRICS:
        if key not in version.metrics and key not in popularity:
            continue
        rows.append(
            MetricRow(
                label,
                direction,
                _fmt(version.metrics.get(key)),
                _fmt(stable.metrics.get(key)) if stable is not None and stable.pk != version.pk else "",
                _fmt(popularity.get(key)),
            )
        )
    return rows


def flat_params(values: dict[str, object], prefix: str = "") -> list[tuple[str, str]]:
    """Nested parameters or metrics as (dotted name, value) rows, sorted."""
    rows: list[tuple[str, str]] = []
    for key, value in sorted(values.items()):
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flat_params(value, f"{name}."))
        else:
            rows.append((name, _fmt(value)))
    return rows


USAGE_SECONDS = 600


def version_usage(versions: Iterable[ModelVersion]) -> dict[int, tuple[int, int]]:
    """Answers and distinct viewers served by each version, counted at most every ten minutes
    per version (cached): counting a million answers' distinct viewers took a second."""
    usage: dict[int, tuple[int, int]] = {}
    for version in versions:
        # The training's start tells a version from another that reused its id (a test database).
        key = f"console:version-usage:{version.pk}:{version.training_started_at.timestamp()}"
        counts = cache.get(key)
        if counts is None:
            counts = _usage(version.pk)
            cache.set(key, counts, USAGE_SECONDS)
        usage[version.pk] = counts
    return usage


def _usage(version_id: int) -> tuple[int, int]:
    counts = Recommendation.objects.filter(model_version_id=version_id).aggregate(
        answers=Count("id"), viewers=Count("viewer_id", distinct=True)
    )
    return counts["answers"], counts["viewers"]


def comparison_charts(versions: list[ModelVersion]) -> list[Chart]:
    labels = [f"v{version.version}" for version in versions]

    def series(key: str, label: str) -> Series:
        return Series(label, [_rounded(version.metric(key), 4) for version in versions])

    return [
        Chart(
            "compare-rmse", "RMSE (lower is better)", labels, [series("rmse", "RMSE")], kind="bar", x_title="version"
        ),
        Chart(
            "compare-ndcg",
            "NDCG@10 against popularity",
            labels,
            [
                series("ndcg@10", "model"),
                Series(
                    "popularity",
                    [_rounded(version.metrics.get("popularity", {}).get("ndcg@10"), 4) for version in versions],
                ),
            ],
            kind="bar",
            x_title="version",
        ),
        Chart(
            "compare-coverage",
            "Catalogue coverage of the lists",
            labels,
            [series("coverage@20", "coverage")],
            kind="bar",
            x_title="version",
        ),
        Chart(
            "compare-training",
            "Training time",
            labels,
            [Series("seconds", [_rounded(version.training_seconds, 1) for version in versions])],
            kind="bar",
            unit="s",
            x_title="version",
        ),
    ]


def status_timeline(version: ModelVersion) -> list[ModelStatusChange]:
    return list(version.status_changes.order_by("at", "id"))


# --- Releases --------------------------------------------------------------------------------


def release_charts(release: Release) -> list[Chart]:
    """Both pools' p99, success rate and watch-through at each check, and the weight over time."""
    runs = list(release.analysis_runs.order_by("at"))
    labels = [timezone.localtime(run.at).strftime("%Y-%m-%d %H:%M:%S") for run in runs]
    hint = (
        f"None of the {len(runs)} checks had this figure for either pool (too few answers to measure it)."
        if runs
        else "No check has run yet (the canary check runs every few minutes)."
    )

    def figure(key: str, pool: str) -> list[float | None]:
        values = []
        for run in runs:
            data = run.canary if pool == "canary" else (run.stable or {})
            values.append(data.get(key))
        return values

    charts = [
        Chart(
            f"release-{key}",
            title,
            labels,
            [Series(pool, figure(key, pool)) for pool in ("stable", "canary")],
            unit=unit,
            empty_hint=hint,
            x_title=time_axis(),
        )
        for key, title, unit in (
            ("p99_ms", "p99 latency at each check", "ms"),
            ("success_rate", "Success rate at each check", "share"),
            ("follow_rate", "Watched after recommended", "share of answers"),
        )
    ]
    events = list(release.events.order_by("at", "id"))
    charts.append(
        Chart(
            "release-weight",
            "Canary weight",
            [timezone.localtime(event.at).strftime("%m-%d %H:%M:%S") for event in events],
            [Series("weight", [event.weight for event in events])],
            unit="% of traffic",
            empty_hint="The release has not moved yet.",
            x_title=time_axis("decision"),
        )
    )
    return charts


def release_decisions(release: Release) -> list[ReleaseEvent]:
    return list(release.events.order_by("at", "id"))


# --- Why a viewer saw a movie ----------------------------------------------------------------


@dataclass(frozen=True)
class ViewerHistory:
    ratings: list[tuple[datetime, Movie, int]]
    watches: list[tuple[datetime, Movie, int]]
    answers: list[Recommendation]
    answers_more: bool


def viewer_history(viewer: Viewer, *, limit: int = 200) -> ViewerHistory:
    ratings = [
        (rating.rated_at, rating.movie, rating.score)
        for rating in Rating.objects.filter(viewer=viewer).select_related("movie").order_by("-rated_at")[:limit]
    ]
    watches = [
        (watch.last_seen_at, watch.movie, watch.minutes_watched)
        for watch in Watch.objects.filter(viewer=viewer).select_related("movie").order_by("-last_seen_at")[:limit]
    ]
    answers = list(
        Recommendation.objects.filter(viewer_id=viewer.id)
        .select_related("model_version")
        .order_by("-served_at")[: limit + 1]
    )
    titles = movie_titles(slug for answer in answers for slug in answer.item_list[:3])
    for answer in answers:
        answer.first_titles = [titles.get(slug, slug) for slug in answer.item_list[:3]]  # type: ignore[attr-defined]
    return ViewerHistory(ratings, watches, answers[:limit], len(answers) > limit)


def viewer_activity_chart(viewer: Viewer) -> Chart:
    """Ratings, minutes watched and lists served per day."""
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for day, count in _per_day(Rating.objects.filter(viewer=viewer), "rated_at"):
        days[day][0] += count
    for day, count in _per_day(Watch.objects.filter(viewer=viewer), "last_seen_at"):
        days[day][1] += count
    for day, count in _per_day(Recommendation.objects.filter(viewer_id=viewer.id), "served_at"):
        days[day][2] += count
    labels = sorted(days)
    return Chart(
        "viewer-activity",
        "Activity per day",
        labels,
        [
            Series("ratings", [days[day][0] for day in labels]),
            Series("movies watched (last seen)", [days[day][1] for day in labels]),
            Series("lists served", [days[day][2] for day in labels]),
        ],
        kind="bar",
        empty_hint="This viewer has no ratings, watches or served lists yet.",
        x_title=time_axis("day"),
    )


def _per_day(queryset: QuerySet[Any], field: str) -> list[tuple[str, int]]:
    return [
        (day.isoformat(), count)
        for day, count in queryset.annotate(day=TruncDate(field))
        .values_list("day")
        .annotate(count=Count("id"))
        .order_by("day")
        if day is not None
    ]


@dataclass(frozen=True)
class ListedMovie:
    rank: int
    slug: str
    movie: Movie | None
    watched_after: datetime | None
    rated_after: tuple[datetime, int] | None
    explored: bool = False  # placed by exploration, not by the ranking


def answer_items(answer: Recommendation) -> list[ListedMovie]:
    """The served list, ranked, with each movie's title and whether the viewer went on to watch
    or rate it after the answer (two queries, whatever the list's length)."""
    slugs = answer.item_list
    movies = {movie.slug: movie for movie in Movie.objects.filter(slug__in=slugs)}
    ids = [movie.id for movie in movies.values()]
    watched = dict(
        Watch.objects.filter(viewer_id=answer.viewer_id, movie_id__in=ids, last_seen_at__gte=answer.served_at)
        .values_list("movie__slug")
        .annotate(first=Max("first_seen_at"))
        .order_by()
    )
    rated: dict[str, tuple[datetime, int]] = {}
    for slug, at, score in (
        Rating.objects.filter(viewer_id=answer.viewer_id, movie_id__in=ids, rated_at__gte=answer.served_at)
        .order_by("rated_at")
        .values_list("movie__slug", "rated_at", "score")
    ):
        rated.setdefault(slug, (at, score))
    explored = set(answer.explored_list)
    return [
        ListedMovie(rank, slug, movies.get(slug), watched.get(slug), rated.get(slug), slug in explored)
        for rank, slug in enumerate(slugs, start=1)
    ]


@dataclass(frozen=True)
class AnswerRelease:
    """The release an answer was served under, and whether it came after the release ended."""

    release: Release
    after_end: bool = False  # in the moments after, before the pools switched versions


def answers_with_release(queryset: QuerySet[Recommendation]) -> QuerySet[Recommendation]:
    """``queryset`` with each answer's ``release_id``: the release running when it was served whose
    candidate or stable version served it; failing that, one that had ended just before. Pools
    look for a new version every ``SERVING_REFRESH_SECONDS``, so for that long after a promotion
    or an abort the old versions still answer, and those answers belong to the release that just
    ended. One query (two correlated subqueries), for a page and for an export alike."""
    involved = Release.objects.filter(
        Q(candidate_id=OuterRef("model_version_id")) | Q(stable_id=OuterRef("model_version_id")),
        created_at__lte=OuterRef("served_at"),
    )
    running = involved.filter(Q(finished_at__isnull=True) | Q(finished_at__gte=OuterRef("served_at")))
    settled_after = ExpressionWrapper(
        OuterRef("served_at") - Value(timedelta(seconds=2 * settings.SERVING_REFRESH_SECONDS)),
        output_field=DateTimeField(),
    )
    ended = involved.filter(finished_at__lt=OuterRef("served_at"), finished_at__gte=settled_after)
    return queryset.annotate(
        release_id=Coalesce(
            Subquery(running.order_by("-created_at").values("pk")[:1]),
            Subquery(ended.order_by("-finished_at").values("pk")[:1]),
        )
    )


def release_serving(answer: Recommendation) -> AnswerRelease | None:
    """The release ``answer`` was served under (``answers_with_release``), and whether it came
    after that release had ended."""
    annotated = "release_id"  # by answers_with_release, which the type checker cannot see
    release_id = answers_with_release(Recommendation.objects.filter(pk=answer.pk)).values_list(annotated, flat=True)
    release = Release.objects.filter(pk__in=release_id).first()
    if release is None:
        return None
    return AnswerRelease(release, after_end=release.finished_at is not None and release.finished_at < answer.served_at)


def version_status_at(version: ModelVersion, at: datetime) -> str:
    """The status ``version`` had at ``at`` (its status history; its status now without one)."""
    change = version.status_changes.filter(at__lte=at).order_by("-at", "-id").first()
    return change.to_status if change is not None else version.status


# --- Export ----------------------------------------------------------------------------------

# Each CSV column and the field it is read from.
PROVENANCE_EXPORT = {
    "request_id": "request_id",
    "served_at": "served_at",
    "viewer_id": "viewer_id",
    "pool": "pool",
    "strategy": "strategy",
    "status": "status",
    "latency_ms": "latency_ms",
    "items": "items",
    "model_version": "model_version__version",
    "ranker": "model_version__ranker",
    "rating_algorithm": "model_version__rating_algorithm",
    "code_revision": "model_version__code_revision",
    "snapshot_hash": "model_version__snapshot__content_hash",
    "snapshot_dvc_md5": "model_version__snapshot__dvc_md5",
    "release": "release_id",  # answers_with_release
}
PROVENANCE_COLUMNS = list(PROVENANCE_EXPORT)


def provenance_export_rows(queryset: QuerySet[Recommendation], *, chunk: int = 5000) -> Iterable[list[object]]:
    """The provenance join for each answer of ``queryset``, read in chunks (for a streamed CSV)."""
    served_at = PROVENANCE_COLUMNS.index("served_at")
    for row in answers_with_release(queryset).values_list(*PROVENANCE_EXPORT.values()).iterator(chunk_size=chunk):
        values: list[object] = list(row)
        values[served_at] = row[served_at].isoformat()
        yield values


def snapshot_of(version: ModelVersion | None) -> DataSnapshot | None:
    return version.snapshot if version is not None else None
