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

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Thresholds:
        known = {key: value for key, value in values.items() if key in cls.__dataclass_fields__}
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def analysis_verdict(
    *, canary: Measurement, stable: Measurement | None, thresholds: Thresholds
) -> tuple[Verdict, list[str]]:
    """Judge one check of the canary against its absolute bounds and against stable."""
    if canary.requests < thresholds.min_requests:
        return Verdict.INCONCLUSIVE, [
            f"only {canary.requests} canary requests in the window, fewer than {thresholds.min_requests}"
        ]
    if canary.p99_ms is None or canary.success_rate is None:
        return Verdict.INCONCLUSIVE, ["no latency or success data for the canary"]

    reasons: list[str] = []
    if canary.p99_ms > thresholds.max_p99_ms:
        reasons.append(f"canary p99 {canary.p99_ms:.1f} ms is above the bound of {thresholds.max_p99_ms:.0f} ms")
    if canary.success_rate < thresholds.min_success_rate:
        reasons.append(
            f"canary success rate {canary.success_rate:.2%} is below the bound of {thresholds.min_success_rate:.2%}"
        )
    comparable = stable is not None and stable.requests >= thresholds.min_requests
    if comparable and stable is not None:
        if stable.p99_ms is not None:
            allowed = stable.p99_ms * thresholds.max_p99_ratio + thresholds.max_p99_slack_ms
            if canary.p99_ms > allowed:
                reasons.append(
                    f"canary p99 {canary.p99_ms:.1f} ms is worse than stable's {stable.p99_ms:.1f} ms "
                    f"beyond the tolerance ({allowed:.1f} ms)"
                )
        if stable.success_rate is not None and canary.success_rate < stable.success_rate - thresholds.max_success_drop:
            reasons.append(
                f"canary success rate {canary.success_rate:.2%} is worse than stable's {stable.success_rate:.2%} "
                f"by more than {thresholds.max_success_drop:.2%}"
            )
        if (
            canary.follow_rate is not None
            and stable.follow_rate is not None
            and min(canary.follow_samples, stable.follow_samples) >= thresholds.min_follow_samples
            and canary.follow_rate < stable.follow_rate - thresholds.max_follow_drop
        ):
            reasons.append(
                f"canary recommendations were followed by a watch {canary.follow_rate:.1%} of the time, "
                f"stable's {stable.follow_rate:.1%}: worse by more than {thresholds.max_follow_drop:.1%}"
            )
    return (Verdict.FAIL, reasons) if reasons else (Verdict.PASS, [])


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


@dataclass(frozen=True)
class MetricCheck:
    """One row of a check's report, as Kayenta shows it: the metric, both pools, the bound the
    canary was held to, and whether it met it (``None``: not judged, too little data)."""

    metric: str
    canary: float | None
    stable: float | None
    bound: str
    passed: bool | None


def analysis_table(*, canary: Measurement, stable: Measurement | None, thresholds: Thresholds) -> list[MetricCheck]:
    """The figures ``analysis_verdict`` judged, one row per metric, with the bound each met or
    missed (the absolute bound, tightened by stable's figure where stable had enough traffic)."""
    comparable = stable is not None and stable.requests >= thresholds.min_requests
    base = stable if comparable else None
    enough = canary.requests >= thresholds.min_requests
    rows = [
        MetricCheck(
            "requests", canary.requests, stable.requests if stable else None, f">= {thresholds.min_requests}", enough
        )
    ]
    p99_bound = thresholds.max_p99_ms
    if base is not None and base.p99_ms is not None:
        p99_bound = min(p99_bound, base.p99_ms * thresholds.max_p99_ratio + thresholds.max_p99_slack_ms)
    rows.append(
        MetricCheck(
            "p99 latency (ms)",
            canary.p99_ms,
            stable.p99_ms if stable else None,
            f"<= {p99_bound:.1f}",
            None if not enough or canary.p99_ms is None else canary.p99_ms <= p99_bound,
        )
    )
    success_bound = thresholds.min_success_rate
    if base is not None and base.success_rate is not None:
        success_bound = max(success_bound, base.success_rate - thresholds.max_success_drop)
    rows.append(
        MetricCheck(
            "success rate",
            canary.success_rate,
            stable.success_rate if stable else None,
            f">= {success_bound:.4f}",
            None if not enough or canary.success_rate is None else canary.success_rate >= success_bound,
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
            "watched after recommended",
            canary.follow_rate,
            stable.follow_rate if stable else None,
            f">= {follow_bound:.4f}"
            if follow_bound is not None
            else f"needs {thresholds.min_follow_samples} answers each",
            None if not enough or follow_bound is None else (canary.follow_rate or 0.0) >= follow_bound,
        )
    )
    return rows
