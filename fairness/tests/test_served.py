from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from catalog.models import Movie, Viewer, Watch
from fairness.models import ServedFairnessReport
from fairness.served import served_report_create, served_reports_catch_up
from fairness.services import FairnessError
from provenance.models import Recommendation

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


DAY = datetime(2026, 11, 1, tzinfo=UTC)


def _at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def _answer(n, viewer, items, hours, *, strategy="personalized", explored=""):
    Recommendation.objects.create(
        request_id=f"r{n}", viewer_id=viewer, pool="stable", strategy=strategy, items=items, explored=explored,
        latency_ms=1.0, served_at=_at(hours), host="t",
    )  # fmt: skip


@pytest.fixture
def served_day(db):
    """Viewer 1 (female) is served a, b at 10:00 and starts b at 10:30: followed.
    Viewer 2 (male) is served a at 10:00 and starts it at 13:00 (too late), then c at 12:00.
    Viewer 3 (male) is served a and, by exploration, c at 10:00, and starts c at 10:10: followed.
    Viewer 9 is unknown to the catalogue and gets a cold-start a, b at 11:00.
    Viewer 1 also starts d at 9:00, and viewer 3 watched a the day before: a is the most popular."""
    one = Viewer.objects.create(id=1, gender="F", age=25, occupation="writer")
    two = Viewer.objects.create(id=2, gender="M", age=25, occupation="writer")
    three = Viewer.objects.create(id=3, gender="M", age=35, occupation="engineer")
    a = Movie.objects.create(slug="a+2000", title="A", year=2000, genres=["Drama"])
    b = Movie.objects.create(slug="b+2000", title="B", year=2000, genres=["Comedy"])
    c = Movie.objects.create(slug="c+2000", title="C", year=2000, genres=["Drama", "Comedy"])
    d = Movie.objects.create(slug="d+2000", title="D", year=2000, genres=["Horror"])
    _answer(1, 1, "a+2000,b+2000", 10)
    _answer(2, 2, "a+2000", 10)
    _answer(3, 3, "a+2000,c+2000", 10, explored="c+2000")
    _answer(4, 9, "a+2000,b+2000", 11, strategy="cold-start")
    _answer(5, 2, "c+2000", 12)
    for viewer, movie, hours in ((one, b, 10.5), (two, a, 13), (three, c, 10 + 1 / 6), (one, d, 9), (three, a, -3)):
        Watch.objects.create(viewer=viewer, movie=movie, first_seen_at=_at(hours), last_seen_at=_at(hours))
    return a, b, c, d


def test_what_each_group_was_served_and_how_often_it_was_followed(served_day):
    report = served_report_create(start=DAY, end=DAY + timedelta(days=1), bootstrap=0, min_group=1)

    figures = report.figures
    assert (report.answers, figures["viewers"], figures["followed"]) == (5, 4, 0.4)
    assert figures["strategies"] == {"cold-start": 1, "personalized": 4}
    assert figures["versions"] == [{"version": None, "answers": 5}]
    gender = figures["dimensions"]["gender"]["groups"]
    assert set(gender) == {"female", "male", "unknown"}
    female, male, unknown = gender["female"], gender["male"], gender["unknown"]
    assert [female["follow_rate"][0], male["follow_rate"][0], unknown["follow_rate"][0]] == [1.0, 0.33333, 0.0]
    assert (female["answers"], male["answers"], unknown["answers"]) == (1, 3, 1)
    assert (female["viewers"], male["viewers"], unknown["viewers"]) == (1, 2, 1)
    assert (female["answer_share"], male["answer_share"], unknown["answer_share"]) == (0.2, 0.6, 0.2)
    assert (female["served_viewer_share"], male["served_viewer_share"]) == (0.25, 0.5)
    assert (female["population_share"], male["population_share"], unknown["population_share"]) == (0.33333, 0.66667, 0)
    assert (unknown["cold_start_share"], male["cold_start_share"]) == (1.0, 0.0)
    assert (male["explored_share"], female["explored_share"]) == (0.25, 0.0)
    # Shown: female Drama 1, Comedy 1 (1 bit); male Drama 4, Comedy 2. Watched in the day:
    # female Comedy, Horror (1 bit); male Drama 2, Comedy 1.
    assert (female["recommended_entropy"], male["recommended_entropy"]) == (1.0, 0.9183)
    assert (female["watched_entropy"], male["watched_entropy"], unknown["watched_entropy"]) == (1.0, 0.9183, None)
    # a, b share no genre (1); a, c share half (0.5); lists of one movie have none.
    assert (female["intra_list_diversity"], male["intra_list_diversity"]) == (1.0, 0.5)
    # a was watched by 2 of the 3 viewers who watched anything, b, c, d by 1.
    assert (female["popularity"], male["popularity"]) == (0.5, 0.5)
    exposure = figures["exposure"]
    # Shown a 4, b 2, c 2, d 0 times.
    assert exposure == {
        "catalogue": 4,
        "coverage": 0.75,
        "gini": 0.375,
        "never_recommended": 1,
        "never_recommended_most_watched": ["d+2000"],
    }


def test_groups_too_small_are_not_compared_and_a_gap_past_the_bound_is_flagged(served_day, settings):
    settings.FAIRNESS_MIN_FOLLOW_RATIO = 0.5

    compared_all = served_report_create(start=DAY, end=DAY + timedelta(days=1), bootstrap=0, min_group=1)
    gap = compared_all.figures["dimensions"]["gender"]["disparity"]["follow_rate"]
    assert (gap["best"], gap["worst"], gap["ratio"]) == ("female", "unknown", 0.0)
    assert (
        "gender: the lists served to unknown were followed 0% as often as female's (no interval; bound 50%)"
        in compared_all.flags
    )
    assert "disparities past the bounds" in mail.outbox[-1].subject

    only_male = served_report_create(start=DAY, end=DAY + timedelta(days=1), bootstrap=0, min_group=2)
    assert only_male.pk == compared_all.pk  # the same window is replaced, not added
    assert only_male.figures["dimensions"]["gender"]["groups"]["female"]["small"] is True
    assert only_male.figures["dimensions"]["gender"]["disparity"]["follow_rate"]["best"] is None
    assert not any(flag.startswith("gender:") for flag in only_male.flags)


def test_follow_rate_intervals_are_seeded_and_points_for_a_constant_group(served_day):
    first = served_report_create(start=DAY, end=DAY + timedelta(days=1), bootstrap=30, seed=3, min_group=1)
    female = first.figures["dimensions"]["gender"]["groups"]["female"]["follow_rate"]
    male_first = first.figures["dimensions"]["gender"]["groups"]["male"]["follow_rate"]
    again = served_report_create(start=DAY, end=DAY + timedelta(days=1), bootstrap=30, seed=3, min_group=1)

    assert female == [1.0, 1.0, 1.0]  # every answer of the group followed: every resample too
    assert 0.0 <= male_first[1] <= male_first[0] <= male_first[2] <= 1.0
    assert again.figures["dimensions"]["gender"]["groups"]["male"]["follow_rate"] == male_first


def test_a_window_without_answers_is_an_error_not_an_empty_report(db):
    with pytest.raises(FairnessError, match="no answer was served"):
        served_report_create(start=DAY, end=DAY + timedelta(days=1))
    with pytest.raises(FairnessError, match="must end after it starts"):
        served_report_create(start=DAY, end=DAY)
    assert not ServedFairnessReport.objects.exists()


def test_the_daily_task_reports_each_past_day_once_after_its_follow_window(served_day, settings):
    settings.FAIRNESS_FOLLOW_HOURS = 1.0
    next_day = DAY + timedelta(days=1)

    assert served_reports_catch_up(now=next_day + timedelta(minutes=30)) == []  # answers may still be followed
    reports = served_reports_catch_up(now=next_day + timedelta(hours=2))
    assert [(report.start, report.end) for report in reports] == [(DAY, next_day)]
    assert served_reports_catch_up(now=next_day + timedelta(hours=3)) == []  # done once; empty days skipped


def test_the_command_reports_a_day_and_names_bad_input(served_day, capsys):
    call_command("fairness_report", "--served", "--day", "2026-11-01", "--bootstrap", "0")

    out = capsys.readouterr().out
    assert "what was served on 2026-11-01: 5 answers to 4 viewers, 40.0% followed" in out
    assert "female" in out
    assert "male" in out
    with pytest.raises(CommandError, match="--day must be a date"):
        call_command("fairness_report", "--served", "--day", "yesterday")
    with pytest.raises(CommandError, match="no answer was served"):
        call_command("fairness_report", "--served", "--day", "2026-10-01")


def test_the_served_report_page_charts_each_dimension(served_day, admin_client):
    report = served_report_create(start=DAY, end=DAY + timedelta(days=1), bootstrap=0, min_group=1)

    url = reverse("admin:fairness_servedfairnessreport_change", args=[report.pk])
    page = admin_client.get(url, {"dimension": "gender"})
    listing = admin_client.get(reverse("admin:fairness_servedfairnessreport_changelist"))

    assert page.status_code == 200
    assert listing.status_code == 200
    body = page.content.decode()
    for chart in ("served-follow", "served-shares", "served-diversity", "served-cold"):
        assert f'data-chart="{chart}"' in body
    assert "female" in body
    assert "small group" not in body
    assert admin_client.get(url, {"dimension": "nope"}).status_code == 200  # an unknown one shows the first


def test_the_overview_shows_the_latest_served_report_and_its_flags(served_day, admin_client, settings):
    settings.FAIRNESS_MIN_FOLLOW_RATIO = 0.5
    report = served_report_create(start=DAY, end=DAY + timedelta(days=1), bootstrap=0, min_group=1)

    body = admin_client.get(reverse("admin:index")).content.decode()

    assert 'id="served-fairness-flags"' in body
    assert reverse("admin:fairness_servedfairnessreport_change", args=[report.pk]) in body
    assert "What was served on 2026-11-01" in body


def test_the_served_command_prints_a_day_whose_best_group_followed_nothing(db, settings, capsys):
    # No answer followed by any group: there is no gap to measure, and the report says so.
    settings.FAIRNESS_MIN_GROUP_VIEWERS = 1
    Viewer.objects.create(id=1, gender="F", age=25, occupation="writer")
    Viewer.objects.create(id=2, gender="M", age=25, occupation="writer")
    Movie.objects.create(slug="a+2000", title="A", year=2000, genres=["Drama"])
    _answer(1, 1, "a+2000", 10)
    _answer(2, 2, "a+2000", 10)

    call_command("fairness_report", "--served", "--day", "2026-11-01")

    out = capsys.readouterr().out
    assert "followed:" in out
    assert "followed: not compared (every group compared is at 0)" in out
    assert ServedFairnessReport.objects.count() == 1
