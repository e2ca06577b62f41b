"""The canary analysis: one pure decision, from measurements of both pools to a verdict.

Modelled on Argo Rollouts, Flagger and Kayenta: a check fails when the canary breaches an
absolute bound or is worse than stable beyond a tolerance; too little traffic, or no data, is
inconclusive and never a pass; a release aborts after ``failure_limit`` failed checks and
promotes once its last step has passed for long enough.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

BEHAVIOURAL_METRIC = "watched after recommended"  # the row that judges what viewers did


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Action(StrEnum):
    WAIT = "wait"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ABORT = "abort"
    PAUSE = "pause"  # stop and ask a person: the analysis cannot decide


@dataclass(frozen=True)
class Measurement:
    """One pool over one window. ``None`` where there was no data to compute a figure from."""

    requests: int
    success_rate: float | None
    p99_ms: float | None
    mean_ms: float | None
    follow_rate: float | None = None  # share of answers followed by a watch of a recommended movie
    follow_samples: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = 50
    max_p99_ms: float = 500.0
    min_success_rate: float = 0.99
    # Worse than stable by more than these is a failure.
    max_p99_ratio: float = 1.5
    max_p99_slack_ms: float = 10.0
    max_success_drop: float = 0.01
    max_follow_drop: float = 0.05
    min_follow_samples: int = 100
    failure_limit: int = 3
    # Argo Rollouts' inconclusiveLimit and Flagger's progress deadline: a canary nobody can judge
    # (no traffic, no data) must not keep its share of the traffic for ever.
    inconclusive_limit: int = 6
    max_step_seconds: float = 6 * 3600
    # The behavioural metric is judged only with enough answers on both pools; when this is set,
    # the last step cannot pass without it (the check is inconclusive until it is judged), so a
    # canary is never promoted on latency and success alone.
    follow_required_on_last_step: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Thresholds:
        known = {key: value for key, value in values.items() if key in cls.__dataclass_fields__}
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MetricCheck:
    """One row of a check, as Kayenta shows it: the metric, both pools, the bound the canary was
    held to (the absolute bound, tightened by stable's figure where stable had enough traffic),
    and whether it met it (``None``: not judged, too little data), with why not.

    A ``required`` row that could not be judged makes the check inconclusive; the follow rate
    is judged only when both pools have enough answers, and is otherwise left out."""

    metric: str
    canary: float | None
    stable: float | None
    bound: str
    passed: bool | None
    reason: str = ""
    required: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MetricCheck:
        return cls(**{key: value for key, value in values.items() if key in cls.__dataclass_fields__})


def analysis_checks(
    *, canary: Measurement, stable: Measurement | None, thresholds: Thresholds, last_step: bool = False
) -> list[MetricCheck]:
    """One check of the canary, one row per metric; ``check_verdict`` derives the verdict.
    ``last_step``: the check is of the release's last step (where the follow rate may be required)."""
    comparable = stable is not None and stable.requests >= thresholds.min_requests
    base = stable if comparable else None
    enough = canary.requests >= thresholds.min_requests
    rows = [
        MetricCheck(
            "requests",
            canary.requests,
            stable.requests if stable else None,
            f">= {thresholds.min_requests}",
            enough,
            f"only {canary.requests} canary requests in the window, fewer than {thresholds.min_requests}",
        )
    ]
    p99_bound, p99_reason = thresholds.max_p99_ms, ""
    if canary.p99_ms is not None and canary.p99_ms > thresholds.max_p99_ms:
        p99_reason = f"canary p99 {canary.p99_ms:.1f} ms is above the bound of {thresholds.max_p99_ms:.0f} ms"
    if base is not None and base.p99_ms is not None:
        allowed = base.p99_ms * thresholds.max_p99_ratio + thresholds.max_p99_slack_ms
        if allowed < p99_bound:
            p99_bound = allowed
            if canary.p99_ms is not None and canary.p99_ms > allowed and not p99_reason:
                p99_reason = (
                    f"canary p99 {canary.p99_ms:.1f} ms is worse than stable's {base.p99_ms:.1f} ms "
                    f"beyond the tolerance ({allowed:.1f} ms)"
                )
    rows.append(
        MetricCheck(
            "p99 latency (ms)",
            canary.p99_ms,
            stable.p99_ms if stable else None,
            f"<= {p99_bound:.1f}",
            None if not enough or canary.p99_ms is None else canary.p99_ms <= p99_bound,
            p99_reason or "no latency data for the canary",
        )
    )
    success_bound, success_reason = thresholds.min_success_rate, ""
    rate = canary.success_rate
    if rate is not None and rate < thresholds.min_success_rate:
        success_reason = f"canary success rate {rate:.2%} is below the bound of {thresholds.min_success_rate:.2%}"
    if base is not None and base.success_rate is not None:
        allowed = base.success_rate - thresholds.max_success_drop
        if allowed > success_bound:
            success_bound = allowed
            if rate is not None and rate < allowed and not success_reason:
                success_reason = (
                    f"canary success rate {rate:.2%} is worse than stable's {base.success_rate:.2%} "
                    f"by more than {thresholds.max_success_drop:.2%}"
                )
    rows.append(
        MetricCheck(
            "success rate",
            rate,
            stable.success_rate if stable else None,
            f">= {success_bound:.4f}",
            None if not enough or rate is None else rate >= success_bound,
            success_reason or "no success data for the canary",
        )
    )
    judged = (
        base is not None
        and canary.follow_rate is not None
        and base.follow_rate is not None
        and min(canary.follow_samples, base.follow_samples) >= thresholds.min_follow_samples
    )
    follow_bound = (base.follow_rate or 0.0) - thresholds.max_follow_drop if judged and base else None
    rows.append(
        MetricCheck(
            BEHAVIOURAL_METRIC,
            canary.follow_rate,
            stable.follow_rate if stable else None,
            f">= {follow_bound:.4f}"
            if follow_bound is not None
            else f"needs {thresholds.min_follow_samples} answers each",
            None if not enough or follow_bound is None else (canary.follow_rate or 0.0) >= follow_bound,
            f"canary recommendations were followed by a watch {canary.follow_rate or 0.0:.1%} of the time, "
            f"stable's {(base.follow_rate or 0.0) if base else 0.0:.1%}: "
            f"worse by more than {thresholds.max_follow_drop:.1%}",
            required=thresholds.follow_required_on_last_step and last_step,
        )
    )
    return rows


def check_verdict(rows: list[MetricCheck]) -> tuple[Verdict, list[str]]:
    """The verdict derived from a check's rows, as Argo Rollouts derives a run's phase from its
    metrics' phases: too little traffic, or a required metric with no data, is inconclusive;
    any failed row fails the check; otherwise it passes."""
    requests = rows[0]
    if not requests.passed:
        return Verdict.INCONCLUSIVE, [requests.reason]
    unjudged = [row for row in rows if row.required and row.passed is None]
    if unjudged:
        return Verdict.INCONCLUSIVE, [f"{row.metric} could not be judged ({row.bound})" for row in unjudged]
    reasons = [row.reason for row in rows if row.passed is False]
    return (Verdict.FAIL, reasons) if reasons else (Verdict.PASS, [])


def analysis_verdict(
    *, canary: Measurement, stable: Measurement | None, thresholds: Thresholds, last_step: bool = False
) -> tuple[Verdict, list[str]]:
    """Judge one check of the canary: ``check_verdict`` of ``analysis_checks``."""
    return check_verdict(analysis_checks(canary=canary, stable=stable, thresholds=thresholds, last_step=last_step))


def release_next_action(
    *,
    verdict: Verdict,
    failed_checks: int,
    thresholds: Thresholds,
    step_done: bool,
    last_step: bool,
    inconclusive_checks: int = 0,
    step_seconds: float = 0.0,
) -> Action:
    """What the release does after a check. ``failed_checks`` already counts this one, and
    ``inconclusive_checks`` the inconclusive ones in a row up to this one; ``step_done``: the step
    has run for its minimum duration; ``step_seconds``: how long it has run."""
    if verdict == Verdict.FAIL:
        return Action.ABORT if failed_checks >= thresholds.failure_limit else Action.WAIT
    if verdict == Verdict.PASS and step_done:
        return Action.PROMOTE if last_step else Action.ADVANCE
    if verdict == Verdict.INCONCLUSIVE and inconclusive_checks >= thresholds.inconclusive_limit:
        return Action.PAUSE
    if step_seconds >= thresholds.max_step_seconds:
        return Action.PAUSE
    return Action.WAIT
