"""Running canary releases: start, check, advance, promote, abort, pause, resume."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.notifications import notification_enqueue
from recommender.models import ModelVersion
from recommender.selectors import model_version_stable
from recommender.services import RegistryError, model_version_set_canary_weight, model_version_set_status
from releases.analysis import (
    Action,
    Measurement,
    Thresholds,
    Verdict,
    analysis_checks,
    check_verdict,
    release_next_action,
)
from releases.measurement import MeasurementError, measure_pool
from releases.models import AnalysisRun, Release, ReleaseEvent
from releases.traffic import traffic_apply

logger = logging.getLogger(__name__)


class ReleaseError(Exception):
    """An action that does not fit the release's state; the message says why."""


def release_start(
    *,
    candidate: ModelVersion,
    steps: list[int] | None = None,
    interval_seconds: int | None = None,
    min_step_seconds: int | None = None,
    thresholds: Mapping[str, object] | None = None,
    actor: str = "",
) -> Release:
    """Put ``candidate`` on the canary pool at the first step's weight.

    One transaction locks the candidate and re-checks that it is a candidate and that no
    release runs; the unique ``Release.running`` refuses a second release started at the same
    moment, which no lock could (there is no row yet to lock).
    """
    steps = steps or list(settings.RELEASE_STEPS)
    interval_seconds = settings.RELEASE_INTERVAL_SECONDS if interval_seconds is None else interval_seconds
    min_step_seconds = settings.RELEASE_MIN_STEP_SECONDS if min_step_seconds is None else min_step_seconds
    if any(not 0 < weight < 100 for weight in steps) or steps != sorted(steps):
        raise ReleaseError(f"steps must be increasing weights between 1 and 99 percent, not {steps}")
    with transaction.atomic():
        candidate = ModelVersion.objects.select_for_update().get(pk=candidate.pk)
        if candidate.status != ModelVersion.Status.CANDIDATE:
            raise ReleaseError(f"v{candidate.version} is {candidate.status}, not a candidate")
        active = Release.objects.select_for_update().filter(state__in=Release.ACTIVE_STATES).first()
        if active is not None:
            raise ReleaseError(f"{active} is still running: promote, abort or finish it first")
        stable = model_version_stable()
        now = timezone.now()
        try:
            with transaction.atomic():
                release = Release.objects.create(
                    candidate=candidate,
                    stable=stable,
                    steps=steps,
                    interval_seconds=interval_seconds,
                    min_step_seconds=min_step_seconds,
                    thresholds={
                        **Thresholds().as_dict(),
                        "follow_required_on_last_step": settings.RELEASE_FOLLOW_REQUIRED,
                        **(thresholds or {}),
                    },
                    created_at=now,
                )
        except IntegrityError:
            raise ReleaseError(
                "another release started at the same moment: promote, abort or finish it first"
            ) from None
        try:
            model_version_set_status(
                version=candidate, status=ModelVersion.Status.CANARY, reason=f"canary at {steps[0]}%", actor=actor
            )
        except RegistryError as error:
            raise ReleaseError(str(error)) from None
        _move(release, state=Release.State.CANARY, weight=steps[0], actor=actor, reason="started")
        release.started_at = release.step_started_at = now
        release.save(update_fields=["started_at", "step_started_at"])
        _notify_after_commit(
            subject=f"canary started: v{candidate.version} at {steps[0]}%",
            body=f"{release}, challenging {f'v{stable.version}' if stable else 'no stable version'}; steps {steps}",
        )
    return release


def release_evaluate(*, release: Release, now: datetime | None = None) -> AnalysisRun | None:
    """Run one check of a canary and act on it (wait, advance, promote, abort, or pause for a person).

    1. Measure both pools over the window, outside any transaction: Prometheus may take seconds.
    2. In one transaction, lock the release and re-check the premise of the measurement (still
       in canary, same step, same step start); a release a person paused, aborted or promoted
       meanwhile refuses the result with ``ReleaseError``, and nothing is written.
    3. Record the check and act on it in that same transaction.

    Paused and finished releases are not checked.
    """
    now = now or timezone.now()
    release.refresh_from_db()
    if release.state != Release.State.CANARY:
        return None
    premise = (release.state, release.step_index, release.step_started_at)
    window_start = max(now - timedelta(seconds=release.interval_seconds), release.step_started_at or now)
    try:
        stable = measure_pool(pool="stable", start=window_start, end=now)
        canary = measure_pool(pool="canary", start=window_start, end=now)
    except MeasurementError as error:
        raise ReleaseError(str(error)) from error
    with transaction.atomic():
        release.refresh_from_db(from_queryset=Release.objects.select_for_update())
        if (release.state, release.step_index, release.step_started_at) != premise:
            raise ReleaseError(
                f"{release} changed while it was being checked (now {release.state}, step {release.step_index + 1}): "
                "the check's result is discarded"
            )
        return _act_on_check(release, now=now, window_start=window_start, stable=stable, canary=canary)


def _act_on_check(
    release: Release, *, now: datetime, window_start: datetime, stable: Measurement, canary: Measurement
) -> AnalysisRun:
    thresholds = release.analysis_thresholds
    checks = analysis_checks(canary=canary, stable=stable, thresholds=thresholds, last_step=release.is_last_step)
    verdict, reasons = check_verdict(checks)
    failed = release.failed_checks + (1 if verdict == Verdict.FAIL else 0)
    inconclusive = release.inconclusive_checks + 1 if verdict == Verdict.INCONCLUSIVE else 0
    step_seconds = (now - (release.step_started_at or now)).total_seconds()
    action = release_next_action(
        verdict=verdict,
        failed_checks=failed,
        thresholds=thresholds,
        step_done=step_seconds >= release.min_step_seconds,
        last_step=release.is_last_step,
        inconclusive_checks=inconclusive,
        step_seconds=step_seconds,
    )
    run = AnalysisRun.objects.create(
        release=release,
        at=now,
        step_index=release.step_index,
        weight=release.weight,
        window_start=window_start,
        window_end=now,
        source="prometheus" if settings.PROMETHEUS_URL else "provenance",
        stable=stable.as_dict(),
        canary=canary.as_dict(),
        verdict=verdict,
        reasons=reasons,
        checks=[check.as_dict() for check in checks],
        action=action,
    )
    release.failed_checks, release.inconclusive_checks = failed, inconclusive
    release.save(update_fields=["failed_checks", "inconclusive_checks"])
    figures = _figures(run)
    if action == Action.ABORT:
        release_abort(
            release=release, actor="analysis", reason=f"{failed} failed checks: {'; '.join(reasons)}\n{figures}"
        )
    elif action == Action.PROMOTE:
        release_promote(release=release, actor="analysis", reason=f"every step passed\n{figures}")
    elif action == Action.PAUSE:
        why = (
            f"{inconclusive} inconclusive checks in a row"
            if inconclusive >= thresholds.inconclusive_limit
            else f"{step_seconds / 3600:.1f} h on step {release.step_index + 1} without a decision"
        )
        _move(release, state=Release.State.PAUSED, weight=release.weight, actor="analysis", reason=f"{why}\n{figures}")
        _notify_after_commit(
            subject=f"canary of v{release.candidate.version} paused: the analysis cannot decide",
            body=f"{why}; the canary keeps {release.weight}% until a person resumes, promotes or aborts it.\n{figures}",
        )
    elif action == Action.ADVANCE:
        weight = release.steps[release.step_index + 1]
        release.step_index += 1
        release.step_started_at = now
        release.save(update_fields=["step_index", "step_started_at"])
        _move(release, state=Release.State.CANARY, weight=weight, actor="analysis", reason=f"step passed\n{figures}")
    return run


def release_promote(*, release: Release, actor: str = "", reason: str = "") -> Release:
    """Make the candidate stable (the old stable is retired, its history kept)."""
    return _conclude(
        release, state=Release.State.PROMOTED, model_status=ModelVersion.Status.STABLE, actor=actor, reason=reason
    )


def release_abort(*, release: Release, actor: str = "", reason: str = "") -> Release:
    """Send all traffic back to stable and mark the candidate rejected."""
    return _conclude(
        release, state=Release.State.ABORTED, model_status=ModelVersion.Status.REJECTED, actor=actor, reason=reason
    )


def _conclude(release: Release, *, state: str, model_status: str, actor: str, reason: str) -> Release:
    """Promote or abort, in one transaction that locks the release, then its candidate, and
    re-checks both: a release someone else concluded a moment ago is refused, not redone."""
    verb = "promote" if state == Release.State.PROMOTED else "abort"
    with transaction.atomic():
        _lock(release, Release.State.CANARY, Release.State.PAUSED, Release.State.PENDING, action=verb)
        candidate = ModelVersion.objects.select_for_update().get(pk=release.candidate_id)
        if candidate.status != ModelVersion.Status.CANARY:
            raise ReleaseError(f"cannot {verb} {release}: v{candidate.version} is {candidate.status}, not in canary")
        try:
            model_version_set_status(
                version=candidate, status=model_status, reason=f"canary {state}: {reason}", actor=actor
            )
        except RegistryError as error:
            raise ReleaseError(f"cannot {verb} {release}: {error}") from None
        release.candidate = candidate
        weight = 100 if state == Release.State.PROMOTED else 0
        _finish(release, state=state, weight=weight, actor=actor, reason=reason)
        outcome = "promoted to stable" if state == Release.State.PROMOTED else "aborted"
        _notify_after_commit(
            subject=f"v{candidate.version} {outcome}"
            if state == Release.State.PROMOTED
            else f"canary of v{candidate.version} aborted",
            body=f"by {actor or 'someone'}: {reason}",
        )
    return release


def release_pause(*, release: Release, actor: str = "", reason: str = "") -> Release:
    """Hold the canary at its weight; checks stop until it is resumed."""
    with transaction.atomic():
        _lock(release, Release.State.CANARY, action="pause")
        _move(release, state=Release.State.PAUSED, weight=release.weight, actor=actor, reason=reason or "paused")
    return release


def release_resume(*, release: Release, actor: str = "", reason: str = "") -> Release:
    with transaction.atomic():
        _lock(release, Release.State.PAUSED, action="resume")
        # The step's clock restarts: a paused canary has not proven itself meanwhile.
        release.step_started_at, release.inconclusive_checks = timezone.now(), 0
        release.save(update_fields=["step_started_at", "inconclusive_checks"])
        _move(release, state=Release.State.CANARY, weight=release.weight, actor=actor, reason=reason or "resumed")
    return release


# The decisions a person can take on a running release (command and console).
RELEASE_DECISIONS = {
    "promote": release_promote,
    "abort": release_abort,
    "pause": release_pause,
    "resume": release_resume,
}


def release_active() -> Release | None:
    return Release.objects.filter(state__in=Release.ACTIVE_STATES).select_related("candidate", "stable").first()


def _lock(release: Release, *states: str, action: str) -> None:
    """Lock the release's row (inside the caller's transaction), reload it and check its state:
    the decision is taken on the release as it is now, and no other decision can interleave."""
    release.refresh_from_db(from_queryset=Release.objects.select_for_update())
    if release.state not in states:
        raise ReleaseError(f"cannot {action} {release}: it is {release.state}")


def _notify_after_commit(*, subject: str, body: str) -> None:
    # Once the decision is committed, and never for one that rolled back.
    transaction.on_commit(lambda: notification_enqueue(subject=subject, body=body))


def _move(release: Release, *, state: str, weight: int, actor: str, reason: str) -> None:
    ReleaseEvent.objects.create(
        release=release,
        at=timezone.now(),
        from_state=release.state,
        to_state=state,
        weight=weight,
        actor=actor[:150],
        reason=reason,
    )
    release.state, release.weight = state, weight
    release.save(update_fields=["state", "weight"])
    # The registry carries the weight serving and NGINX read; a finished release leaves none.
    model_version_set_canary_weight(
        version=release.candidate, weight=weight if state in (Release.State.CANARY, Release.State.PAUSED) else 0
    )
    logger.info("%s: %s", release, reason.splitlines()[0] if reason else state)
    # NGINX must follow the new weight; a transaction in progress applies it once committed.
    transaction.on_commit(traffic_apply)


def _finish(release: Release, *, state: str, weight: int, actor: str, reason: str) -> None:
    _move(release, state=state, weight=weight, actor=actor, reason=reason)
    release.decided_by, release.reason, release.finished_at = actor[:150], reason, timezone.now()
    release.running = None  # frees the one running-release slot
    release.save(update_fields=["decided_by", "reason", "finished_at", "running"])


def _figures(run: AnalysisRun) -> str:
    def line(pool: str, figures: dict[str, Any] | None) -> str:
        if not figures:
            return f"{pool}: no data"
        return (
            f"{pool}: {figures['requests']} requests, success {figures['success_rate']}, p99 {figures['p99_ms']} ms, "
            f"mean {figures['mean_ms']} ms, followed {figures['follow_rate']}"
        )

    return f"{line('canary', run.canary)}\n{line('stable', run.stable)}"
