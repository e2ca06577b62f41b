from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import call_command

from catalog.models import Movie, Rating, Viewer, Watch
from fairness.feedback import feedback_windows_compute
from fairness.models import FeedbackWindow
from provenance.models import Recommendation

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


DAY = datetime(2026, 11, 1, tzinfo=UTC)


def _answer(n, viewer, items, at):
    Recommendation.objects.create(
        request_id=f"r{n}", viewer_id=viewer, pool="stable", strategy="personalized",
        items=",".join(items), latency_ms=1.0, served_at=at, host="t",
    )  # fmt: skip


def _watch(viewer, movie, at):
    Watch.objects.create(viewer=viewer, movie=movie, first_seen_at=at, last_seen_at=at, minutes_watched=10)


@pytest.fixture
def hand_built(db):
    """Two days. Day 1: a shown 3 times, b once; viewers 1 and 2 watch {a, b} and {a}.
    Day 2: only a shown (b stopped); viewers 1, 2, 3 watch {c}, {c}, {a, c}; viewer 1 rates a 4, c 2."""
    v1, v2, v3 = (Viewer.objects.create(id=i, gender=g) for i, g in ((1, "F"), (2, "M"), (3, "M")))
    a = Movie.objects.create(slug="a+2000", title="A", year=2000, genres=["Drama"])
    b = Movie.objects.create(slug="b+2000", title="B", year=2000, genres=["Comedy"])
    c = Movie.objects.create(slug="c+2000", title="C", year=2000, genres=["Drama", "Comedy"])
    Movie.objects.create(slug="d+2000", title="D", year=2000, genres=["Horror"])  # never shown
    noon, next_noon = DAY + timedelta(hours=12), DAY + timedelta(days=1, hours=12)
    _answer(1, 1, ["a+2000", "b+2000"], noon)
    _answer(2, 2, ["a+2000"], noon)
    _answer(3, 3, ["a+2000"], noon)
    _answer(4, 1, ["a+2000"], next_noon)
    _watch(v1, a, noon), _watch(v1, b, noon), _watch(v2, a, noon)
    _watch(v1, c, next_noon), _watch(v2, c, next_noon), _watch(v3, a, next_noon), _watch(v3, c, next_noon)
    Rating.objects.create(viewer=v1, movie=a, score=4, rated_at=next_noon)
    Rating.objects.create(viewer=v1, movie=c, score=2, rated_at=next_noon)
    return a, b, c


def test_exposure_concentration_and_stopped_movies_per_window(hand_built):
    _, b, _ = hand_built

    first, second = feedback_windows_compute(until=DAY + timedelta(days=2))

    assert (first.start, first.end) == (DAY, DAY + timedelta(days=1))
    assert first.figures["answers"] == 3
    assert first.figures["coverage"] == 0.5  # a and b of four movies
    # exposures 3, 1, 0, 0: mean absolute difference 20/16 over twice the mean (2) -> 0.625
    assert first.figures["gini"] == pytest.approx(0.625)
    assert second.figures["gini"] == pytest.approx(0.75)  # 1, 0, 0, 0
    assert first.figures["stopped"] == 1
    assert first.figures["stopped_movies"] == [b.pk]  # shown on day 1, never again
    assert second.figures["stopped"] == 0  # the last window cannot tell


def test_what_was_shown_against_what_was_watched_next(hand_built):
    a = hand_built[0]

    first, second = feedback_windows_compute(until=DAY + timedelta(days=2))

    echo = first.figures["echo"]
    # shown on day 1: a 3, b 1, c 0; watched on day 2: a 1, b 0, c 3
    assert echo["spearman"] == pytest.approx(-0.5)
    assert echo["top"][0] == {"movie": a.pk, "recommended": 3, "watched_next": 1, "mean_rating_next": 4.0}
    assert second.figures["echo"] == {"next_window": False}


def test_consumption_diversity_and_homogenisation(hand_built):
    first, second = feedback_windows_compute(until=DAY + timedelta(days=2))

    # Day 1: viewer 1 watched Drama and Comedy (1 bit), viewer 2 one movie (not counted).
    assert first.figures["viewer_genre_entropy"] == pytest.approx(1.0)
    assert first.figures["genre_entropy"]["female"] == pytest.approx(1.0)
    assert first.figures["genre_entropy"]["male"] == 0.0
    # Jaccard of {a, b} and {a}: 1/2.
    assert first.figures["homogenisation"] == pytest.approx(0.5)
    assert first.figures["viewer_genre_entropy_quartiles"] == [1.0, 1.0, 1.0]
    # Day 2: {c}, {c}, {a, c}: pairs 1, 1/2, 1/2.
    assert second.figures["homogenisation"] == pytest.approx(2 / 3, abs=1e-5)


def test_each_viewers_genre_entropy_is_counted_as_the_definition_says_on_random_watches(db):
    from fairness import metrics

    rng = np.random.default_rng(4)
    names = ["Drama", "Comedy", "Horror", "Romance", "Action"]
    movies = [
        Movie.objects.create(
            slug=f"m{n}+2000", title=f"M{n}", year=2000, genres=list(rng.choice(names, rng.integers(0, 3)))
        )
        for n in range(25)
    ]
    viewers = [Viewer.objects.create(id=n + 1, gender=("F", "M")[n % 2], age=25) for n in range(40)]
    watched: dict[int, set[Movie]] = {viewer.id: set() for viewer in viewers}
    for viewer in viewers:
        for movie in rng.choice(len(movies), rng.integers(1, 7), replace=False):
            _watch(viewer, movies[movie], DAY + timedelta(hours=3))
            watched[viewer.id].add(movies[movie])

    (window,) = feedback_windows_compute(until=DAY + timedelta(days=1))

    # A movie's genres once each (as the group entropies count them); viewers of two movies or more.
    own = {
        viewer: metrics.entropy(list(Counter(g for movie in seen for g in set(movie.genres)).values()))
        for viewer, seen in watched.items()
        if len(seen) >= 2
    }
    assert window.figures["viewer_genre_entropy"] == pytest.approx(round(float(np.mean(list(own.values()))), 4))
    female = [value for viewer, value in own.items() if viewer % 2 == 1]  # ids 1, 3, ...: n even, "F"
    assert window.figures["groups"]["gender"]["female"]["viewer_entropy"] == pytest.approx(
        round(float(np.mean(female)), 4)
    )
    assert window.figures["groups"]["gender"]["female"]["viewers"] == 20


def test_computing_again_replaces_the_windows_and_the_command_prints_them(hand_built, capsys):
    feedback_windows_compute(until=DAY + timedelta(days=2))
    call_command("feedback_loops", "--hours", "24")

    assert FeedbackWindow.objects.count() >= 2
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("window")
    assert "2026-11-01 00:00" in out


def test_only_the_windows_since_a_moment_are_computed_again(hand_built):
    feedback_windows_compute(until=DAY + timedelta(days=2))
    day_one = FeedbackWindow.objects.get(start=DAY)

    windows = feedback_windows_compute(until=DAY + timedelta(days=2), since=DAY + timedelta(days=1))

    assert [window.start for window in windows] == [DAY + timedelta(days=1)]
    assert FeedbackWindow.objects.get(start=DAY).pk == day_one.pk  # the earlier day is kept as it was
    assert FeedbackWindow.objects.count() == 2


def test_nothing_to_compute_on_an_empty_database(db, capsys):
    call_command("feedback_loops")

    assert "nothing to compute" in capsys.readouterr().out


def test_the_trends_page_charts_every_window(hand_built, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.org", "pw"))
    feedback_windows_compute(until=DAY + timedelta(days=2))

    page = client.get("/admin/fairness/feedbackwindow/")

    charts = {chart.key: chart for chart in page.context["charts"]}
    assert charts["feedback-exposure"].labels == ["2026-11-01", "2026-11-02"]  # daily: dates, with the year
    assert charts["feedback-exposure"].series[0].values == [0.625, 0.75]
    assert [series.label for series in charts["feedback-diversity"].series] == [
        "everyone", "female", "male", "a viewer's own (mean)",
    ]  # fmt: skip
    assert 'data-chart="feedback-homogenisation"' in page.content.decode()
    assert charts["feedback-viewer-diversity"].series[1].values == [1.0, 0.9183]  # the median viewer's own


def test_consumption_diversity_per_group_in_every_dimension(hand_built):
    first, second = feedback_windows_compute(until=DAY + timedelta(days=2))

    # Day 1: female (viewer 1) watched Drama, Comedy; male (viewer 2) Drama only.
    assert first.figures["groups"]["gender"] == {
        "female": {"viewers": 1, "entropy": 1.0, "viewer_entropy": 1.0},
        "male": {"viewers": 1, "entropy": 0.0, "viewer_entropy": None},
    }
    # Day 2: male viewers 2 {c} and 3 {a, c}: Drama 3, Comedy 2 together; viewer 3's own Drama 2, Comedy 1.
    assert second.figures["groups"]["gender"]["male"] == {"viewers": 2, "entropy": 0.971, "viewer_entropy": 0.9183}
    assert set(second.figures["groups"]) == {"gender", "age", "occupation", "gender x age", "gender x occupation"}
    assert second.figures["groups"]["age"]["unknown"]["viewers"] == 3


def test_the_trends_page_draws_the_groups_of_the_dimension_asked_for(hand_built, admin_client):
    feedback_windows_compute(until=DAY + timedelta(days=2))

    page = admin_client.get("/admin/fairness/feedbackwindow/", {"dimension": "gender x age"})

    assert page.status_code == 200  # the change list does not take ?dimension= for a filter
    charts = {chart.key: chart for chart in page.context["charts"]}
    entropy = charts["feedback-groups-entropy"]
    assert entropy.title == "Genre entropy of what each group watched per gender x age"
    assert [series.label for series in entropy.series] == ["female unknown", "male unknown"]
    assert [series.values for series in entropy.series] == [[1.0, 1.0], [0.0, 0.971]]


def test_a_viewers_own_variety_day_by_day_and_so_far(hand_built):
    from fairness.selectors import viewer_diversity_chart

    chart = viewer_diversity_chart(2)

    # Viewer 2: a (Drama) on day 1, c (Drama, Comedy) on day 2.
    assert chart.labels == ["2026-11-01", "2026-11-02"]
    assert [series.values for series in chart.series] == [[0.0, 1.0], [0.0, 0.9183]]
    assert viewer_diversity_chart(99).has_data is False


def test_the_daily_tasks_are_scheduled(db):
    from django_q.models import Schedule

    call_command("setup_schedules")

    assert Schedule.objects.get(name="feedback loops").func == "fairness.tasks.feedback_windows_daily"
    assert Schedule.objects.get(name="fairness of what was served").func == "fairness.tasks.served_reports_daily"


def test_the_trends_page_draws_the_latest_windows_of_one_size(hand_built, admin_client, monkeypatch):
    from fairness import selectors

    monkeypatch.setattr(selectors, "WINDOWS_DRAWN", 2)
    feedback_windows_compute(until=DAY + timedelta(days=2))  # two daily windows
    # Three hourly windows after them, and an older daily one: none of them is on the daily line.
    hourly = [FeedbackWindow(start=DAY + timedelta(days=2, hours=h), end=DAY + timedelta(days=2, hours=h + 1),
                             computed_at=DAY, figures={"gini": 0.1}) for h in range(3)]  # fmt: skip
    FeedbackWindow.objects.bulk_create(
        [*hourly, FeedbackWindow(start=DAY - timedelta(days=9), end=DAY - timedelta(days=8), computed_at=DAY)]
    )

    daily = admin_client.get("/admin/fairness/feedbackwindow/")
    hours = admin_client.get("/admin/fairness/feedbackwindow/", {"size": "3600"})

    assert daily.context["sizes"] == [(86400, "daily"), (3600, "hourly")]
    assert daily.context["charts"][0].labels == ["2026-11-01", "2026-11-02"]  # the latest two, oldest first
    assert hours.status_code == 200  # ?size= picks the charts' windows, not a filter of the rows
    assert hours.context["charts"][0].labels == ["2026-11-03 01:00", "2026-11-03 02:00"]
    assert hours.context["charts"][0].series[0].values == [0.1, 0.1]
    assert "through 2026-11-03 02:00 (UTC)" in hours.content.decode()


def test_a_viewers_activity_is_drawn_on_consecutive_days(hand_built):
    from fairness.selectors import viewer_diversity_chart

    Watch.objects.create(
        viewer_id=2, movie=Movie.objects.get(slug="b+2000"), first_seen_at=DAY + timedelta(days=4),
        last_seen_at=DAY + timedelta(days=4), minutes_watched=5,
    )  # fmt: skip

    chart = viewer_diversity_chart(2)

    assert chart.labels == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    assert chart.series[0].values[2:4] == [None, None]  # days without a watch are gaps, not missing labels
