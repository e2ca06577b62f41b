"""Two release decisions at the same moment, on MariaDB: each thread has its own connection, and a
barrier (or an event) holds both at the gap between deciding and acting, where the faults were.

After any pair, the registry keeps its invariant: exactly one stable version, at most one
canary, and the release's state agrees with its candidate's status.
"""

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from recommender.models import ModelVersion
from recommender.services import model_train, model_version_set_status
from releases import services
from releases.analysis import Measurement
from releases.models import Release
from releases.services import ReleaseError, release_abort, release_evaluate, release_promote, release_start

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]

HEALTHY = Measurement(requests=500, success_rate=1.0, p99_ms=5.0, mean_ms=2.0)


@pytest.fixture(autouse=True)
def no_automatic_release(settings):
    # These tests commit for real, so a passing candidate would start its own canary.
    settings.RELEASE_AUTO_START = False


@pytest.fixture
def candidate(trained_version) -> ModelVersion:
    return model_train(actor="test")


def _in_thread(target: Callable[[], object], outcomes: dict[str, object], name: str) -> threading.Thread:
    def run() -> None:
        try:
            outcomes[name] = target()
        except ReleaseError as error:
            outcomes[name] = error
        finally:
            connection.close()  # each thread opened its own

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def _slow_status_changes(monkeypatch) -> None:
    """Widen the gap between a decision's check and its act, as a slow database would."""
    real = model_version_set_status

    def slow(**kwargs):
        time.sleep(0.5)
        return real(**kwargs)

    monkeypatch.setattr(services, "model_version_set_status", slow)


def _assert_registry_invariant() -> None:
    assert ModelVersion.objects.filter(status=ModelVersion.Status.STABLE).count() == 1
    assert ModelVersion.objects.filter(status=ModelVersion.Status.CANARY).count() <= 1
    assert Release.objects.filter(state__in=Release.ACTIVE_STATES).count() <= 1


def test_an_abort_during_a_check_wins_and_the_check_is_discarded(candidate, trained_version, monkeypatch):
    release = release_start(candidate=candidate, steps=[10, 50], min_step_seconds=0)
    measuring, decided = threading.Event(), threading.Event()

    def slow_measure(*, pool, start, end):
        measuring.set()
        decided.wait(timeout=30)  # Prometheus takes its time; a person presses Abort meanwhile
        return HEALTHY

    monkeypatch.setattr(services, "measure_pool", slow_measure)
    outcomes: dict[str, object] = {}
    check = _in_thread(
        lambda: release_evaluate(release=Release.objects.get(pk=release.pk), now=timezone.now() + timedelta(seconds=1)),
        outcomes,
        "check",
    )
    assert measuring.wait(timeout=30)
    release_abort(release=Release.objects.get(pk=release.pk), actor="ops", reason="looks wrong")
    decided.set()
    check.join(timeout=60)

    release.refresh_from_db()
    candidate.refresh_from_db()
    trained_version.refresh_from_db()
    assert isinstance(outcomes["check"], ReleaseError)
    assert "changed while it was being checked" in str(outcomes["check"])
    assert (release.state, release.weight, release.decided_by) == (Release.State.ABORTED, 0, "ops")
    assert candidate.status == ModelVersion.Status.REJECTED
    assert trained_version.status == ModelVersion.Status.STABLE
    assert not release.analysis_runs.exists()  # the discarded check wrote nothing
    _assert_registry_invariant()


def test_promote_and_abort_at_the_same_moment_leave_exactly_one_stable_version(candidate, trained_version, monkeypatch):
    release = release_start(candidate=candidate)
    _slow_status_changes(monkeypatch)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def decide(decision: Callable[..., Release], name: str) -> Callable[[], object]:
        def act() -> object:
            barrier.wait(timeout=30)
            return decision(release=Release.objects.get(pk=release.pk), actor=name, reason=name)

        return act

    threads = [
        _in_thread(decide(release_promote, "promote"), outcomes, "promote"),
        _in_thread(decide(release_abort, "abort"), outcomes, "abort"),
    ]
    for thread in threads:
        thread.join(timeout=60)

    refused = [name for name, outcome in outcomes.items() if isinstance(outcome, ReleaseError)]
    assert len(refused) == 1, outcomes
    assert "cannot" in str(outcomes[refused[0]])
    release.refresh_from_db()
    candidate.refresh_from_db()
    trained_version.refresh_from_db()
    if release.state == Release.State.PROMOTED:
        assert (candidate.status, trained_version.status) == (ModelVersion.Status.STABLE, ModelVersion.Status.RETIRED)
    else:
        assert release.state == Release.State.ABORTED
        assert (candidate.status, trained_version.status) == (ModelVersion.Status.REJECTED, ModelVersion.Status.STABLE)
    _assert_registry_invariant()


def test_two_releases_started_at_the_same_moment_leave_one_running(trained_version, monkeypatch):
    first, second = model_train(actor="test"), model_train(actor="test")
    _slow_status_changes(monkeypatch)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def start(version: ModelVersion) -> Callable[[], object]:
        def act() -> object:
            barrier.wait(timeout=30)
            return release_start(candidate=version, actor=f"v{version.version}")

        return act

    threads = [_in_thread(start(version), outcomes, f"v{version.version}") for version in (first, second)]
    for thread in threads:
        thread.join(timeout=60)

    refused = [name for name, outcome in outcomes.items() if isinstance(outcome, ReleaseError)]
    assert len(refused) == 1, outcomes
    assert Release.objects.filter(state=Release.State.CANARY).count() == 1
    assert ModelVersion.objects.filter(status=ModelVersion.Status.CANARY).count() == 1
    assert ModelVersion.objects.filter(status=ModelVersion.Status.CANDIDATE).count() == 1  # the other waits
    _assert_registry_invariant()
