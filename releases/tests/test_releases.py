from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from provenance.models import Recommendation
from recommender.models import ModelVersion
from recommender.services import model_train
from releases.models import Release
from releases.services import (
    ReleaseError,
    release_abort,
    release_evaluate,
    release_pause,
    release_promote,
    release_resume,
    release_start,
)

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


@pytest.fixture
def candidate(trained_version) -> ModelVersion:
    version = model_train(actor="test")
    assert version.status == ModelVersion.Status.CANDIDATE
    return version


def _serve(pool, version, *, count, latency_ms=5.0, status=200, at=None, viewer=1, items="a+1"):
    at = at or timezone.now()  # after the release started: only its own step's traffic counts
    Recommendation.objects.bulk_create(
        Recommendation(
            request_id=f"{pool}-{version.version}-{at.timestamp()}-{n}-{status}",
            viewer_id=viewer,
            model_version=version,
            pool=pool,
            strategy="personalized",
            items=items,
            status=status,
            latency_ms=latency_ms,
            served_at=at,
            host="test",
        )
        for n in range(count)
    )


def test_start_puts_the_candidate_on_the_canary_pool(candidate, trained_version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # people are told once it is committed
        release = release_start(candidate=candidate, steps=[10, 25, 50], actor="ops")

    candidate.refresh_from_db()
    assert (release.state, release.weight, release.stable) == (Release.State.CANARY, 10, trained_version)
    assert candidate.status == ModelVersion.Status.CANARY
    assert list(release.events.values_list("to_state", "weight", "actor")) == [("canary", 10, "ops")]
    assert "canary started: v2 at 10%" in mail.outbox[-1].subject


def test_only_one_release_at_a_time(candidate):
    release_start(candidate=candidate)
    third = model_train(actor="test")

    with pytest.raises(ReleaseError, match="is still running"):
        release_start(candidate=third)


def test_only_candidates_can_be_released(trained_version):
    with pytest.raises(ReleaseError, match="v1 is stable, not a candidate"):
        release_start(candidate=trained_version)


def test_a_healthy_canary_is_promoted_through_its_steps(candidate, trained_version, django_capture_on_commit_callbacks):
    release = release_start(candidate=candidate, steps=[10, 50], interval_seconds=60, min_step_seconds=0)
    _serve("stable", trained_version, count=200)
    _serve("canary", candidate, count=100)

    first = release_evaluate(release=release, now=timezone.now() + timedelta(seconds=1))
    release.refresh_from_db()
    assert (first.verdict, first.action, release.weight) == ("pass", "advance", 50)

    _serve("stable", trained_version, count=200, at=timezone.now() + timedelta(seconds=2))
    _serve("canary", candidate, count=100, at=timezone.now() + timedelta(seconds=2))
    with django_capture_on_commit_callbacks(execute=True):
        second = release_evaluate(release=release, now=timezone.now() + timedelta(seconds=3))

    release.refresh_from_db()
    candidate.refresh_from_db()
    trained_version.refresh_from_db()
    assert (second.verdict, second.action) == ("pass", "promote")
    assert (release.state, release.weight, release.decided_by) == ("promoted", 100, "analysis")
    assert candidate.status == ModelVersion.Status.STABLE
    assert trained_version.status == ModelVersion.Status.RETIRED
    assert "v2 promoted to stable" in mail.outbox[-1].subject


def test_a_slow_canary_is_aborted_after_the_failure_limit(
    candidate, trained_version, django_capture_on_commit_callbacks
):
    release = release_start(
        candidate=candidate, interval_seconds=60, min_step_seconds=0, thresholds={"failure_limit": 2}
    )
    _serve("stable", trained_version, count=200, latency_ms=5)
    _serve("canary", candidate, count=100, latency_ms=900)

    first = release_evaluate(release=release, now=timezone.now() + timedelta(seconds=1))
    release.refresh_from_db()
    assert (first.verdict, first.action, release.state) == ("fail", "wait", "canary")
    with django_capture_on_commit_callbacks(execute=True):
        second = release_evaluate(release=release, now=timezone.now() + timedelta(seconds=1))

    release.refresh_from_db()
    candidate.refresh_from_db()
    assert second.action == "abort"
    assert (release.state, release.weight) == ("aborted", 0)
    assert candidate.status == ModelVersion.Status.REJECTED
    assert "canary p99 900.0 ms is above the bound of 500 ms" in release.reason
    assert "canary of v2 aborted" in mail.outbox[-1].subject


def test_errors_count_against_the_canary(candidate, trained_version):
    release = release_start(candidate=candidate, interval_seconds=60, thresholds={"failure_limit": 1})
    _serve("stable", trained_version, count=200)
    _serve("canary", candidate, count=90)
    _serve("canary", candidate, count=10, status=500)

    run = release_evaluate(release=release, now=timezone.now() + timedelta(seconds=1))

    assert run.canary["success_rate"] == 0.9
    assert run.action == "abort"


def test_low_traffic_is_inconclusive_and_never_promotes(candidate, trained_version):
    release = release_start(candidate=candidate, interval_seconds=60, min_step_seconds=0)
    _serve("canary", candidate, count=3)

    run = release_evaluate(release=release, now=timezone.now() + timedelta(seconds=1))

    release.refresh_from_db()
    assert (run.verdict, run.action, release.state) == ("inconclusive", "wait", "canary")


def test_a_paused_release_is_not_checked_until_resumed(candidate, trained_version):
    release = release_start(candidate=candidate, min_step_seconds=0)
    release_pause(release=release, actor="ops", reason="holiday")
    _serve("canary", candidate, count=100)

    assert release_evaluate(release=release) is None
    release_resume(release=release, actor="ops")
    release.refresh_from_db()
    assert release.state == "canary"
    assert list(release.events.values_list("to_state", flat=True)) == ["canary", "paused", "canary"]


def test_a_person_can_promote_or_abort_at_any_time(candidate, trained_version):
    release = release_start(candidate=candidate)

    release_abort(release=release, actor="ops", reason="looks wrong")

    release.refresh_from_db()
    assert (release.state, release.decided_by, release.reason) == ("aborted", "ops", "looks wrong")
    with pytest.raises(ReleaseError, match=r"cannot promote .* it is aborted"):
        release_promote(release=release, actor="ops")


def test_the_history_answers_which_version_served_during_a_canary(candidate, trained_version):
    from recommender.selectors import model_version_stable_at

    release = release_start(candidate=candidate)
    during = timezone.now()
    release_promote(release=release, actor="ops", reason="manual")

    assert model_version_stable_at(during) == trained_version
    assert model_version_stable_at(timezone.now()) == candidate


def test_release_command_starts_reports_and_promotes(candidate, capsys):
    from django.core.management import call_command

    call_command("release", "start", steps="10,50", interval=60, min_step=0)
    call_command("release", "status")
    call_command("release", "promote", reason="looks good")

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "v2 vs stable v1: canary at 10% (step 1 of 2: [10, 50]), 0 failed checks; not checked yet"
    assert out[1] == out[0]
    assert out[2].startswith("v2 vs stable v1: promoted at 100%")


def test_release_command_explains_what_cannot_be_done(trained_version):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no release is running to abort"):
        call_command("release", "abort")
    with pytest.raises(CommandError, match="no candidate version to release"):
        call_command("release", "start")
    with pytest.raises(CommandError, match="--steps must be comma-separated whole percentages, not 'ten'"):
        call_command("release", "start", steps="ten")


def test_a_passing_candidate_starts_a_canary_by_itself(trained_version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        second = model_train(actor="test")

    second.refresh_from_db()
    assert second.status == ModelVersion.Status.CANARY
    assert Release.objects.get().candidate == second


def test_the_automatic_start_after_a_person_released_the_version_first_ends_cleanly(candidate, trained_version):
    from releases.tasks import release_start_candidate

    release = release_start(candidate=candidate, actor="ops")  # pressed before the task ran

    assert release_start_candidate(candidate.pk) == f"not started: v{candidate.version} is canary, not a candidate"
    assert Release.objects.get() == release


def test_the_automatic_start_while_another_release_runs_ends_cleanly(candidate, trained_version):
    from releases.tasks import release_start_candidate

    other = release_start(candidate=candidate, actor="ops")
    third = model_train(actor="test")

    said = release_start_candidate(third.pk)

    assert said == f"not started: {other} is still running: promote, abort or finish it first"


def test_the_scheduled_check_evaluates_the_running_release(candidate, trained_version):
    from releases.tasks import release_evaluate_active

    release_start(candidate=candidate, interval_seconds=60)
    _serve("canary", candidate, count=100)

    assert release_evaluate_active().endswith("pass -> wait")


def test_console_buttons_promote_with_permission(client, django_user_model, candidate):
    release = release_start(candidate=candidate)
    url = reverse("admin:releases_release_act", args=[release.pk, "promote"])
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.post(url, {"reason": "x"}).status_code == 403

    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.org", "pw"))
    response = client.post(url, {"reason": "numbers look good"})

    release.refresh_from_db()
    assert response.status_code == 302
    assert (release.state, release.decided_by, release.reason) == ("promoted", "ops", "numbers look good")
    page = client.get(reverse("admin:releases_release_change", args=[release.pk]))
    assert page.status_code == 200
    assert b"numbers look good" in page.content


def test_the_prometheus_analysis_counts_answers_not_refused_ids(settings, monkeypatch):
    from releases import measurement

    settings.PROMETHEUS_URL = "http://127.0.0.1:9"
    queries: list[str] = []

    def scalar(query, at):
        queries.append(query)
        return 100.0

    monkeypatch.setattr(measurement, "_prometheus_scalar", scalar)

    requests, *_ = measurement._prometheus_figures(pool="canary", start=timezone.now(), end=timezone.now())

    # A 400 answered a malformed id, not the model: only 2xx and 5xx are answers.
    assert requests == 100
    assert 'status=~"2..|5.."' in queries[0]


def test_a_canary_without_data_pauses_after_the_inconclusive_limit_and_people_are_told(
    candidate, django_capture_on_commit_callbacks
):
    release = release_start(candidate=candidate, steps=[10, 50], thresholds={"inconclusive_limit": 2})
    # No answers at all: every check is inconclusive.

    first = release_evaluate(release=release, now=timezone.now() + timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        second = release_evaluate(release=release, now=timezone.now() + timedelta(seconds=2))

    release.refresh_from_db()
    assert (first.verdict, first.action) == ("inconclusive", "wait")
    assert (second.verdict, second.action) == ("inconclusive", "pause")
    assert (release.state, release.weight, release.inconclusive_checks) == ("paused", 10, 2)
    assert "2 inconclusive checks in a row" in release.events.last().reason
    assert "paused: the analysis cannot decide" in mail.outbox[-1].subject
    assert release_evaluate(release=release) is None  # a paused release is not checked


def test_the_canary_follows_answers_for_the_hours_the_served_fairness_report_does(db, settings):
    from catalog.models import Movie, Viewer, Watch
    from releases.measurement import measure_pool

    settings.PROMETHEUS_URL = ""
    viewer = Viewer.objects.create(id=1, gender="F", age=25, occupation="writer")
    movie = Movie.objects.create(slug="a+2000", title="A", year=2000, genres=["Drama"])
    ten = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    Recommendation.objects.create(
        request_id="f1", viewer_id=1, pool="canary", items="a+2000", latency_ms=1.0, served_at=ten, host="t"
    )
    started = ten + timedelta(minutes=90)
    Watch.objects.create(viewer=viewer, movie=movie, first_seen_at=started, last_seen_at=started)

    settings.FAIRNESS_FOLLOW_HOURS = 2.0  # the answer at 10:00 is read over 12:00-13:00's window
    followed = measure_pool(pool="canary", start=ten + timedelta(hours=2), end=ten + timedelta(hours=3))

    assert (followed.follow_rate, followed.follow_samples) == (1.0, 1)
