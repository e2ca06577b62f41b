"""Running canary releases: start, check, advance, promote, abort, pause, resume."""

from __future__ import annotations

import json
import logging
import math
import urllib.request
from datetime import datetime, timedelta
from urllib.parse import urlencode

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provenance.models import Recommendation
from recommender.models import ModelVersion, Watch
from recommender.services import model_version_set_status
from recsite.notifications import notification_send
from releases.analysis import Action, Measurement, Verdict, analysis_verdict, release_next_action
from releases.models import AnalysisRun, Release, ReleaseEvent
from releases.traffic import traffic_apply

logger = logging.getLogger(__name__)


class ReleaseError(Exception):
    """An action that does not fit the release's state; the message says why."""


def release_start(
    *,
    candidate: ModelVersion,
    steps: list[int] | None = None,
    interval_seconds: int = 300,
    min_step_seconds: int = 1800,
    thresholds: dict[str, object] | None = None,
    actor: str = "",
) -> Release:
    """Put ``candidate`` on the canary pool at the first step's weight."""
    steps = steps or [20]
    if any(not 0 < weight < 100 for weight in steps) or steps != sorted(steps):
        raise ReleaseError(f"steps must be increasing weights between 1 and 99 percent, not {steps}")
    with transaction.atomic():
        candidate = ModelVersion.objects.select_for_update().get(pk=candidate.pk)
        if candidate.status != ModelVersion.Status.CANDIDATE:
            raise ReleaseError(f"v{candidate.version} is {candidate.status}, not a candidate")
        active = Release.objects.select_for_update().filter(state__in=Release.ACTIVE_STATES).first()
        if active is not None:
            raise ReleaseError(f"{active} is still running: promote, abort or finish it first")
        stable = ModelVersion.objects.filter(status=ModelVersion.Status.STABLE).first()
        now = timezone.now()
        release = Release.objects.create(
            candidate=candidate,
            stable=stable,
            steps=steps,
            interval_seconds=interval_seconds,
            min_step_seconds=min_step_seconds,
            thresholds={**Release._meta.get_field("thresholds").get_default(), **(thresholds or {})},
            created_at=now,
        )
        model_version_set_status(
            version=candidate, status=ModelVersion.Status.CANARY, reason=f"canary at {steps[0]}%", actor=actor
        )
        _move(release, state=Release.State.CANARY, weight=steps[0], actor=actor, reason="started")
        release.started_at = release.step_started_at = now
        release.save(update_fields=["started_at", "step_started_at"])
    notification_send(
        subject=f"canary started: v{candidate.version} at {steps[0]}%",
        body=f"{release}, challenging {f'v{stable.version}' if stable else 'no stable version'}; steps {steps}",
    )
    return release


def release_evaluate(*, release: Release, now: datetime | None = None) -> AnalysisRun | None:
    """Run one check of a canary and act on it (wait, advance, promote or abort).

    Paused and finished releases are not checked.
    """
    now = now or timezone.now()
    if release.state != Release.State.CANARY:
        return None
    window_start = max(now - timedelta(seconds=release.interval_seconds), release.step_started_at or now)
    stable = measure_pool(pool="stable", start=window_start, end=now)
    canary = measure_pool(pool="canary", start=window_start, end=now)
    thresholds = release.analysis_thresholds
    verdict, reasons = analysis_verdict(canary=canary, stable=stable, thresholds=thresholds)
    failed = release.failed_checks + (1 if verdict == Verdict.FAIL else 0)
    step_done = (now - (release.step_started_at or now)).total_seconds() >= release.min_step_seconds
    action = release_next_action(
        verdict=verdict,
        failed_checks=failed,
        thresholds=thresholds,
        step_done=step_done,
        last_step=release.is_last_step,
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
        action=action,
    )
    release.failed_checks = failed
    release.save(update_fields=["failed_checks"])
    figures = _figures(run)
    if action == Action.ABORT:
        release_abort(
            release=release, actor="analysis", reason=f"{failed} failed checks: {'; '.join(reasons)}\n{figures}"
        )
    elif action == Action.PROMOTE:
        release_promote(release=release, actor="analysis", reason=f"every step passed\n{figures}")
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
        release,
        state=Release.State.PROMOTED,
        model_status=ModelVersion.Status.STABLE,
        subject=f"v{release.candidate.version} promoted to stable",
        actor=actor,
        reason=reason,
    )


def release_abort(*, release: Release, actor: str = "", reason: str = "") -> Release:
    """Send all traffic back to stable and mark the candidate rejected."""
    return _conclude(
        release,
        state=Release.State.ABORTED,
        model_status=ModelVersion.Status.REJECTED,
        subject=f"canary of v{release.candidate.version} aborted",
        actor=actor,
        reason=reason,
    )


def _conclude(release: Release, *, state: str, model_status: str, subject: str, actor: str, reason: str) -> Release:
    verb = "promote" if state == Release.State.PROMOTED else "abort"
    _require(release, Release.State.CANARY, Release.State.PAUSED, Release.State.PENDING, action=verb)
    with transaction.atomic():
        model_version_set_status(
            version=release.candidate, status=model_status, reason=f"canary {state}: {reason}", actor=actor
        )
        weight = 100 if state == Release.State.PROMOTED else 0
        _finish(release, state=state, weight=weight, actor=actor, reason=reason)
    notification_send(subject=subject, body=f"by {actor or 'someone'}: {reason}")
    return release


def release_pause(*, release: Release, actor: str = "", reason: str = "") -> Release:
    """Hold the canary at its weight; checks stop until it is resumed."""
    _require(release, Release.State.CANARY, action="pause")
    _move(release, state=Release.State.PAUSED, weight=release.weight, actor=actor, reason=reason or "paused")
    return release


def release_resume(*, release: Release, actor: str = "", reason: str = "") -> Release:
    _require(release, Release.State.PAUSED, action="resume")
    # The step's clock restarts: a paused canary has not proven itself meanwhile.
    release.step_started_at = timezone.now()
    release.save(update_fields=["step_started_at"])
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


def _require(release: Release, *states: str, action: str) -> None:
    release.refresh_from_db()
    if release.state not in states:
        raise ReleaseError(f"cannot {action} {release}: it is {release.state}")


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
    logger.info("%s: %s", release, reason.splitlines()[0] if reason else state)
    # NGINX must follow the new weight; a transaction in progress applies it once committed.
    transaction.on_commit(traffic_apply)


def _finish(release: Release, *, state: str, weight: int, actor: str, reason: str) -> None:
    _move(release, state=state, weight=weight, actor=actor, reason=reason)
    release.decided_by, release.reason, release.finished_at = actor[:150], reason, timezone.now()
    release.save(update_fields=["decided_by", "reason", "finished_at"])


def _figures(run: AnalysisRun) -> str:
    def line(pool: str, figures: dict | None) -> str:
        if not figures:
            return f"{pool}: no data"
        return (
            f"{pool}: {figures['requests']} requests, success {figures['success_rate']}, p99 {figures['p99_ms']} ms, "
            f"mean {figures['mean_ms']} ms, followed {figures['follow_rate']}"
        )

    return f"{line('canary', run.canary)}\n{line('stable', run.stable)}"


# --- Measuring the pools ------------------------------------------------------------------


def measure_pool(
    *, pool: str, start: datetime, end: datetime, follow_window: timedelta = timedelta(hours=1)
) -> Measurement:
    """One pool over [start, end): requests, success rate and latency (from Prometheus when
    ``PROMETHEUS_URL`` is set, else from the provenance table), and the share of its answers
    followed by a watch of a recommended movie (the stream, joined in the database)."""
    follow_rate, samples = _follow_rate(
        pool=pool, start=start - follow_window, end=end - follow_window, window=follow_window
    )
    if settings.PROMETHEUS_URL:
        requests, success_rate, p99_ms, mean_ms = _prometheus_figures(pool=pool, start=start, end=end)
    else:
        requests, success_rate, p99_ms, mean_ms = _provenance_figures(pool=pool, start=start, end=end)
    return Measurement(
        requests=requests,
        success_rate=success_rate,
        p99_ms=p99_ms,
        mean_ms=mean_ms,
        follow_rate=follow_rate,
        follow_samples=samples,
    )


def _provenance_figures(
    *, pool: str, start: datetime, end: datetime
) -> tuple[int, float | None, float | None, float | None]:
    rows = list(
        Recommendation.objects.filter(pool=pool, served_at__gte=start, served_at__lt=end).values_list(
            "status", "latency_ms"
        )
    )
    if not rows:
        return 0, None, None, None
    statuses = np.array([status for status, _ in rows])
    latencies = np.array([latency for _, latency in rows], dtype=np.float64)
    return (
        len(rows),
        round(float((statuses < 500).mean()), 5),
        round(float(np.percentile(latencies, 99)), 3),
        round(float(latencies.mean()), 3),
    )


def _prometheus_figures(
    *, pool: str, start: datetime, end: datetime
) -> tuple[int, float | None, float | None, float | None]:
    """The same figures from the labelled /recommend metrics, through Prometheus' HTTP API."""
    window = f"{max(int((end - start).total_seconds()), 1)}s"
    selector = f'pool="{pool}"'
    total = _prometheus_scalar(f"sum(increase(recsite_recommend_requests_total{{{selector}}}[{window}]))", end)
    if not total:
        return 0, None, None, None
    failed = _prometheus_scalar(
        f'sum(increase(recsite_recommend_requests_total{{{selector},status=~"5.."}}[{window}]))', end
    )
    buckets = f"sum by (le) (rate(recsite_recommend_latency_seconds_bucket{{{selector}}}[{window}]))"
    p99 = _prometheus_scalar(f"histogram_quantile(0.99, {buckets})", end)
    mean = _prometheus_scalar(
        f"sum(rate(recsite_recommend_latency_seconds_sum{{{selector}}}[{window}]))"
        f" / sum(rate(recsite_recommend_latency_seconds_count{{{selector}}}[{window}]))",
        end,
    )
    return (
        round(total),
        round(1 - (failed or 0.0) / total, 5),
        round(p99 * 1000, 3) if p99 is not None else None,
        round(mean * 1000, 3) if mean is not None else None,
    )


def _prometheus_scalar(query: str, at: datetime) -> float | None:
    url = f"{settings.PROMETHEUS_URL.rstrip('/')}/api/v1/query?" + urlencode({"query": query, "time": at.timestamp()})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            payload = json.load(response)
    except (OSError, ValueError) as error:
        raise ReleaseError(f"Prometheus at {settings.PROMETHEUS_URL} did not answer: {error}") from error
    results = payload.get("data", {}).get("result", [])
    if payload.get("status") != "success" or not results:
        return None
    value = float(results[0]["value"][1])
    return value if math.isfinite(value) else None


def _follow_rate(*, pool: str, start: datetime, end: datetime, window: timedelta) -> tuple[float | None, int]:
    answers = list(
        Recommendation.objects.filter(pool=pool, status=200, served_at__gte=start, served_at__lt=end).values_list(
            "viewer_id", "served_at", "items"
        )
    )
    if not answers:
        return None, 0
    viewers = {viewer for viewer, _, _ in answers}
    watches: dict[int, list[tuple[str, datetime]]] = {}
    for viewer, slug, first_seen in Watch.objects.filter(
        viewer_id__in=viewers, last_seen_at__gte=start, first_seen_at__lt=end + window
    ).values_list("viewer_id", "movie__slug", "first_seen_at"):
        watches.setdefault(viewer, []).append((slug, first_seen))
    followed = 0
    for viewer, served_at, items in answers:
        recommended = set(items.split(","))
        if any(
            slug in recommended and served_at <= seen < served_at + window for slug, seen in watches.get(viewer, [])
        ):
            followed += 1
    return round(followed / len(answers), 5), len(answers)
