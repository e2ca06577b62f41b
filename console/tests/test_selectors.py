from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from catalog.models import Movie, Rating, Viewer, Watch
from console import selectors
from console.selectors import quantile_from_histogram
from provenance.models import Recommendation
from provenance.rollup import LATENCY_BOUNDS_MS
from recommender.models import ModelVersion
from stream.models import RejectedLine, RejectionOverflow

from .conftest import serve

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


def _histogram(**counts):
    """Counts per bucket, named by each bucket's upper bound: _histogram(ms5=90, ms10=10)."""
    bins = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for name, count in counts.items():
        bound = name[2:]
        bins[len(LATENCY_BOUNDS_MS) if bound == "inf" else LATENCY_BOUNDS_MS.index(int(bound))] = count
    return bins


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (_histogram(), None),
        (_histogram(ms5=100), 4.97),  # 99th of 100 in (2, 5]: 2 + 3 * 99/100
        (_histogram(ms5=90, ms10=10), 9.5),  # the 99th falls 9 of 10 into (5, 10]
        (_histogram(ms1=50, ms100=50), 99.0),  # the 99th: 49 of 50 into (50, 100]
        (_histogram(ms5=98, msinf=2), 10000.0),  # in the unbounded bucket: the top bound
    ],
)
def test_p99_is_interpolated_inside_its_histogram_bucket(counts, expected):
    result = quantile_from_histogram(counts)

    assert result == (None if expected is None else pytest.approx(expected))


def test_pool_traffic_counts_requests_p99_and_errors_per_pool_and_bucket(db):
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    version = ModelVersion.objects.create(version=1, training_started_at=start)
    serve("stable", version, count=100, latency_ms=3.0, at=start + timedelta(minutes=1))
    serve("stable", version, count=10, latency_ms=40.0, status=500, at=start + timedelta(minutes=2))
    serve("canary", version, count=20, latency_ms=8.0, at=start + timedelta(minutes=7))

    traffic = selectors.pool_traffic(since=start, until=start + timedelta(minutes=10), bucket_minutes=5)

    assert len(traffic.labels) == 2
    assert traffic.requests_per_minute == {"stable": [22.0, 0.0], "canary": [0.0, 4.0]}
    assert traffic.error_rate == {"stable": [round(10 / 110, 4), None], "canary": [None, 0.0]}
    assert traffic.p99_ms["stable"][0] == pytest.approx(20 + 30 * (0.99 * 110 - 100) / 10, abs=0.01)
    assert traffic.p99_ms["canary"] == [None, pytest.approx(5 + 5 * 0.99, abs=0.01)]


def test_a_traffic_chart_has_one_series_per_pool_and_says_when_it_is_empty(db):
    now = timezone.now()
    charts = selectors.traffic_charts(selectors.pool_traffic(since=now - timedelta(hours=1), until=now))

    assert [chart.key for chart in charts] == ["traffic-requests", "traffic-p99", "traffic-errors"]
    assert [series.label for series in charts[0].series] == ["stable", "canary"]
    assert charts[1].has_data is False  # no answers: no p99 to draw
    assert charts[1].config()["type"] == "line"


def test_rejections_add_the_kept_lines_and_the_overflow_counts(db):
    now = timezone.now()
    for n, reason in enumerate(["bad-time", "bad-time", "unknown-request"]):
        RejectedLine.objects.create(line_hash=f"h{n}", reason=reason, raw="x", length=1, received_at=now)
    RejectionOverflow.objects.create(reason="unknown-request", count=5, last_at=now)

    assert selectors.rejections_by_reason() == [("unknown-request", 6), ("bad-time", 2)]


def test_the_queue_is_not_running_when_a_schedule_is_overdue(db):
    now = timezone.now()
    Schedule.objects.create(name="retrain models", func="recommender.tasks.model_retrain", next_run=now)
    assert selectors.queue_health(now).alive is True
    assert selectors.queue_health(now).next_training == now

    late = selectors.queue_health(now + timedelta(minutes=10))

    assert late.alive is False
    assert late.schedules[0].overdue is True
    assert "not running" in late.summary


def test_the_queue_says_which_schedule_failed_last_rather_than_all_ran_on_time(db):
    from django_q.models import Task

    now = timezone.now()
    Task.objects.create(
        id="t1", name="t1", func="recommender.tasks.model_retrain", started=now, stopped=now, success=False
    )
    Schedule.objects.create(name="retrain models", func="recommender.tasks.model_retrain", next_run=now, task="t1")

    health = selectors.queue_health(now)

    assert health.alive is True
    assert health.summary == "running, but the last run failed for: retrain models (see the failed tasks)"


def test_the_console_shows_the_gate_rows_as_the_gate_stored_them(db):
    # Rows as stored, even where today's settings would decide otherwise: the console never
    # judges a version again.
    stored = [
        {"check": "RMSE below the bound", "figure": 0.95, "bound": "< 1.0", "passed": True, "reason": "x"},
        {"check": "NDCG@10 not below popularity's", "figure": None, "bound": ">= popularity's", "passed": False,
         "reason": "no NDCG@10"},
    ]  # fmt: skip
    version = ModelVersion(version=2, training_started_at=timezone.now(), gate={"passed": False, "checks": stored})

    rows = selectors.gate_rows(version)

    assert [(row.check, row.figure, row.bound, row.passed) for row in rows] == [
        ("RMSE below the bound", 0.95, "< 1.0", True),
        ("NDCG@10 not below popularity's", None, ">= popularity's", False),
    ]
    assert selectors.gate_rows(ModelVersion(version=3, training_started_at=timezone.now())) == []


def test_an_answers_items_say_what_the_viewer_did_after(db):
    viewer = Viewer.objects.create(id=7)
    alien = Movie.objects.create(slug="alien+1979", title="Alien", year=1979, genres=["Horror"])
    heat = Movie.objects.create(slug="heat+1995", title="Heat", year=1995)
    served = datetime(2026, 11, 30, 12, tzinfo=UTC)
    before, after = served - timedelta(hours=1), served + timedelta(hours=1)
    Watch.objects.create(viewer=viewer, movie=alien, first_seen_at=after, last_seen_at=after, minutes_watched=30)
    Rating.objects.create(viewer=viewer, movie=heat, score=2, rated_at=before)  # before: not "after"
    answer = Recommendation.objects.create(
        request_id="r1", viewer_id=7, pool="stable", strategy="personalized",
        items="heat+1995,alien+1979,gone+2001", latency_ms=1.0, served_at=served, host="t",
    )  # fmt: skip

    items = selectors.answer_items(answer)

    assert [(item.rank, item.slug, item.movie) for item in items] == [
        (1, "heat+1995", heat),
        (2, "alien+1979", alien),
        (3, "gone+2001", None),
    ]
    assert [item.watched_after for item in items] == [None, after, None]
    assert [item.rated_after for item in items] == [None, None, None]


@pytest.mark.engine  # a correlated subquery with date arithmetic
def test_an_answer_belongs_to_the_release_it_was_served_under(released):
    canary_answer = Recommendation.objects.filter(pool="canary").earliest("served_at")
    stable_answer = Recommendation.objects.filter(pool="stable").earliest("served_at")

    assert selectors.release_serving(canary_answer) == selectors.AnswerRelease(released, after_end=False)
    assert selectors.release_serving(stable_answer) == selectors.AnswerRelease(released, after_end=False)


@pytest.mark.engine  # a correlated subquery with date arithmetic
def test_an_answer_long_after_a_release_ended_is_outside_it(released):
    from releases.services import release_abort

    release_abort(release=released, actor="ops", reason="test")
    released.refresh_from_db()
    serve("canary", released.candidate, count=1, viewer=13, at=released.finished_at + timedelta(minutes=5))
    late = Recommendation.objects.filter(pool="canary").latest("served_at")

    assert selectors.release_serving(late) is None


def test_the_release_charts_have_both_pools_at_each_check(released):
    charts = {chart.key: chart for chart in selectors.release_charts(released)}

    assert set(charts) == {"release-p99_ms", "release-success_rate", "release-follow_rate", "release-weight"}
    p99 = charts["release-p99_ms"]
    assert len(p99.labels) == released.analysis_runs.count() == 1
    assert p99.series[0].values == [5.0]
    assert p99.series[1].values == [5.0]
    assert charts["release-weight"].series[0].values == [20]
