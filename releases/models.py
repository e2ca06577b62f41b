"""Canary releases of model versions, their checks and every transition."""

from __future__ import annotations

from django.db import models

from releases.analysis import Thresholds, Verdict


def default_steps() -> list[int]:
    return list(Release.DEFAULT_STEPS)


def default_thresholds() -> dict[str, object]:
    return Thresholds().as_dict()


class Release(models.Model):
    """A candidate model version challenging the stable one with a share of the traffic."""

    class State(models.TextChoices):
        PENDING = "pending"
        CANARY = "canary"
        PAUSED = "paused"
        PROMOTED = "promoted"
        ABORTED = "aborted"

    ACTIVE_STATES = (State.PENDING, State.CANARY, State.PAUSED)
    # What a release does unless told otherwise (the command, the console action, auto-start).
    DEFAULT_STEPS = (20,)
    DEFAULT_INTERVAL_SECONDS = 300
    DEFAULT_MIN_STEP_SECONDS = 1800

    candidate = models.ForeignKey("recommender.ModelVersion", on_delete=models.PROTECT, related_name="releases")
    stable = models.ForeignKey(
        "recommender.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="challenged_by"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    steps = models.JSONField(default=default_steps, help_text="canary traffic weights in percent, one per step")
    step_index = models.PositiveSmallIntegerField(default=0)
    weight = models.PositiveSmallIntegerField(default=0, help_text="the canary's share of traffic now, in percent")
    thresholds = models.JSONField(default=default_thresholds, help_text="the analysis settings")
    interval_seconds = models.PositiveIntegerField(
        default=DEFAULT_INTERVAL_SECONDS, help_text="length of each check's window"
    )
    min_step_seconds = models.PositiveIntegerField(
        default=DEFAULT_MIN_STEP_SECONDS, help_text="minimum time on a step before advancing"
    )
    failed_checks = models.PositiveSmallIntegerField(default=0)
    inconclusive_checks = models.PositiveSmallIntegerField(default=0, help_text="inconclusive checks in a row")
    # True while the release runs, NULL once it ended. Unique (NULLs are distinct on every
    # database): two releases started at the same moment cannot both run, even where no row
    # exists yet for a lock to hold (InnoDB under READ COMMITTED takes no gap locks).
    running = models.BooleanField(null=True, default=True, unique=True, editable=False)
    decided_by = models.CharField(max_length=150, blank=True, help_text="who or what decided the outcome")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    step_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"release of v{self.candidate.version} ({self.state}, {self.weight}%)"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def decisions(self) -> list[str]:
        """What an operator may decide now, in the order the console offers it."""
        if not self.is_active:
            return []
        return ["promote", "resume" if self.state == self.State.PAUSED else "pause", "abort"]

    def decision_effect(self, action: str) -> str:
        """What ``action`` will do, in the words the confirmation page shows."""
        stable = f"v{self.stable.version}" if self.stable_id and self.stable else "no stable version"
        candidate = f"v{self.candidate.version}"
        return {
            "promote": f"{candidate} becomes stable and takes all the traffic; {stable} is retired, its history kept.",
            "abort": f"All the traffic goes back to {stable}; {candidate} is rejected and leaves the canary pool.",
            "pause": f"{candidate} keeps its {self.weight}% of the traffic; checks stop until it is resumed.",
            "resume": f"The checks start again on {candidate} at {self.weight}%; the step's clock restarts.",
        }[action]

    @property
    def is_last_step(self) -> bool:
        return self.step_index >= len(self.steps) - 1

    @property
    def analysis_thresholds(self) -> Thresholds:
        return Thresholds.from_dict(self.thresholds)


class ReleaseEvent(models.Model):
    """Every state or weight change of a release: when, by whom, why."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(db_index=True)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    weight = models.PositiveSmallIntegerField()
    actor = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state or '-'} -> {self.to_state} ({self.weight}%) at {self.at:%Y-%m-%d %H:%M:%S}"


class AnalysisRun(models.Model):
    """One check of a canary: the measurements of both pools, the verdict and its reasons."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="analysis_runs")
    at = models.DateTimeField()
    step_index = models.PositiveSmallIntegerField()
    weight = models.PositiveSmallIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    source = models.CharField(max_length=16, help_text="prometheus or provenance")
    stable = models.JSONField(null=True, blank=True)
    canary = models.JSONField()
    verdict = models.CharField(max_length=16, choices=[(verdict.value, verdict.value) for verdict in Verdict])
    reasons = models.JSONField(default=list, blank=True)
    checks = models.JSONField(
        default=list, blank=True, help_text="the check's rows (releases.analysis.MetricCheck), the verdict's source"
    )
    action = models.CharField(max_length=16)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.verdict} at {self.at:%Y-%m-%d %H:%M:%S} ({self.weight}%)"
