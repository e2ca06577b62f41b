import pytest

from releases.analysis import (
    Action,
    Measurement,
    Thresholds,
    Verdict,
    analysis_checks,
    analysis_verdict,
    check_verdict,
    release_next_action,
)

HEALTHY = Measurement(requests=500, success_rate=1.0, p99_ms=12.0, mean_ms=4.0, follow_rate=0.30, follow_samples=400)


def _canary(**changes):
    return Measurement(**{**HEALTHY.as_dict(), **changes})


def test_a_healthy_canary_passes():
    assert analysis_verdict(canary=_canary(), stable=HEALTHY, thresholds=Thresholds()) == (Verdict.PASS, [])


def test_too_little_traffic_is_inconclusive_never_a_pass():
    verdict, reasons = analysis_verdict(canary=_canary(requests=10), stable=HEALTHY, thresholds=Thresholds())

    assert verdict == Verdict.INCONCLUSIVE
    assert reasons == ["only 10 canary requests in the window, fewer than 50"]


def test_no_data_is_inconclusive():
    verdict, _ = analysis_verdict(canary=_canary(p99_ms=None), stable=HEALTHY, thresholds=Thresholds())

    assert verdict == Verdict.INCONCLUSIVE


def test_fails_by_absolute_latency_bound_even_without_stable():
    verdict, reasons = analysis_verdict(canary=_canary(p99_ms=650.0), stable=None, thresholds=Thresholds())

    assert verdict == Verdict.FAIL
    assert reasons == ["canary p99 650.0 ms is above the bound of 500 ms"]


def test_fails_by_absolute_success_bound():
    verdict, reasons = analysis_verdict(canary=_canary(success_rate=0.95), stable=None, thresholds=Thresholds())

    assert verdict == Verdict.FAIL
    assert reasons == ["canary success rate 95.00% is below the bound of 99.00%"]


def test_fails_when_slower_than_stable_beyond_tolerance():
    verdict, reasons = analysis_verdict(canary=_canary(p99_ms=40.0), stable=HEALTHY, thresholds=Thresholds())

    assert verdict == Verdict.FAIL
    assert reasons == ["canary p99 40.0 ms is worse than stable's 12.0 ms beyond the tolerance (28.0 ms)"]


def test_fails_when_recommendations_are_followed_less_than_stable():
    verdict, reasons = analysis_verdict(canary=_canary(follow_rate=0.10), stable=HEALTHY, thresholds=Thresholds())

    assert verdict == Verdict.FAIL
    assert reasons[0].startswith("canary recommendations were followed by a watch 10.0% of the time")


def test_an_unjudged_follow_rate_holds_only_the_last_step_and_only_when_required():
    few = _canary(follow_samples=20)
    required = Thresholds(follow_required_on_last_step=True)

    middle = analysis_verdict(canary=few, stable=HEALTHY, thresholds=required, last_step=False)
    last = analysis_verdict(canary=few, stable=HEALTHY, thresholds=required, last_step=True)
    optional = analysis_verdict(canary=few, stable=HEALTHY, thresholds=Thresholds(), last_step=True)

    assert middle == (Verdict.PASS, [])
    assert last == (Verdict.INCONCLUSIVE, ["watched after recommended could not be judged (needs 100 answers each)"])
    assert optional == (Verdict.PASS, [])


def test_stable_with_too_little_traffic_is_no_yardstick():
    quiet_stable = Measurement(requests=3, success_rate=1.0, p99_ms=1.0, mean_ms=1.0)

    verdict, _ = analysis_verdict(canary=_canary(p99_ms=40.0), stable=quiet_stable, thresholds=Thresholds())

    assert verdict == Verdict.PASS


@pytest.mark.parametrize(
    ("verdict", "failed", "step_done", "last_step", "action"),
    [
        (Verdict.PASS, 0, False, False, Action.WAIT),  # the step has not run long enough
        (Verdict.PASS, 0, True, False, Action.ADVANCE),
        (Verdict.PASS, 1, True, True, Action.PROMOTE),
        (Verdict.FAIL, 1, True, True, Action.WAIT),  # below the failure limit
        (Verdict.FAIL, 3, False, False, Action.ABORT),  # the failure limit is reached
        (Verdict.INCONCLUSIVE, 0, True, True, Action.WAIT),
    ],
)
def test_next_action(verdict, failed, step_done, last_step, action):
    result = release_next_action(
        verdict=verdict, failed_checks=failed, thresholds=Thresholds(), step_done=step_done, last_step=last_step
    )

    assert result == action


@pytest.mark.parametrize(
    ("verdict", "inconclusive", "step_seconds", "action"),
    [
        (Verdict.INCONCLUSIVE, 5, 60.0, Action.WAIT),  # below the inconclusive limit (6)
        (Verdict.INCONCLUSIVE, 6, 60.0, Action.PAUSE),  # six in a row: a person must look
        (Verdict.PASS, 0, 6 * 3600.0, Action.PAUSE),  # passing, yet stuck on its step too long
        (Verdict.INCONCLUSIVE, 1, 6 * 3600.0, Action.PAUSE),
        (Verdict.FAIL, 0, 6 * 3600.0, Action.WAIT),  # failing counts toward the abort instead
        (Verdict.PASS, 0, 6 * 3600.0 - 1, Action.WAIT),
    ],
)
def test_a_canary_nobody_can_judge_pauses(verdict, inconclusive, step_seconds, action):
    result = release_next_action(
        verdict=verdict,
        failed_checks=0 if verdict != Verdict.FAIL else 1,
        thresholds=Thresholds(),
        step_done=False,
        last_step=False,
        inconclusive_checks=inconclusive,
        step_seconds=step_seconds,
    )

    assert result == action


@pytest.mark.parametrize(
    ("canary", "stable", "expected"),
    [
        # metric -> (bound, passed) for: requests, p99, success rate, follow rate
        (
            _canary(),
            HEALTHY,
            [(">= 50", True), ("<= 28.0", True), (">= 0.9900", True), (">= 0.2500", True)],
        ),
        (  # stable's p99 12 ms tightens the 500 ms bound to 12 * 1.5 + 10
            _canary(p99_ms=30.0),
            HEALTHY,
            [(">= 50", True), ("<= 28.0", False), (">= 0.9900", True), (">= 0.2500", True)],
        ),
        (  # without stable only the absolute bounds hold, and the follow rate is not judged
            _canary(p99_ms=30.0, success_rate=0.985),
            None,
            [(">= 50", True), ("<= 500.0", True), (">= 0.9900", False), ("needs 100 answers each", None)],
        ),
        (  # too little traffic: nothing judged but the traffic itself
            _canary(requests=10),
            HEALTHY,
            [(">= 50", False), ("<= 28.0", None), (">= 0.9900", None), (">= 0.2500", None)],
        ),
        (
            _canary(follow_rate=0.20),
            HEALTHY,
            [(">= 50", True), ("<= 28.0", True), (">= 0.9900", True), (">= 0.2500", False)],
        ),
    ],
)
def test_the_check_report_shows_each_metrics_bound_and_outcome(canary, stable, expected):
    rows = analysis_checks(canary=canary, stable=stable, thresholds=Thresholds())

    assert [row.metric for row in rows] == ["requests", "p99 latency (ms)", "success rate", "watched after recommended"]
    assert [(row.bound, row.passed) for row in rows] == expected
    verdict, reasons = analysis_verdict(canary=canary, stable=stable, thresholds=Thresholds())
    # The verdict is derived from the rows: a failed row is a failed check, and the other way round.
    assert (verdict, reasons) == check_verdict(rows)
    assert (verdict == Verdict.FAIL) == any(row.passed is False for row in rows[1:])
