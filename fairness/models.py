"""Fairness reports: per-group quality, representation, diversity and exposure of a version."""

from __future__ import annotations

from django.db import models


class FairnessReport(models.Model):
    """One report on one model version, computed from its held-out measurement (per rating and
    per viewer, kept in its artifact), the catalogue's demographics and its top lists.

    ``figures`` holds the whole report (see ``fairness.services.fairness_report_create``);
    ``flags`` the disparities past the configured bounds, which notify people."""

    model_version = models.ForeignKey(
        "recommender.ModelVersion", on_delete=models.CASCADE, related_name="fairness_reports"
    )
    created_at = models.DateTimeField(db_index=True)
    bootstrap = models.PositiveIntegerField(help_text="resamples behind each interval (0: none)")
    seed = models.PositiveIntegerField(default=0)
    min_group_viewers = models.PositiveIntegerField(help_text="smaller groups are shown, flagged, not compared")
    figures = models.JSONField(default=dict)
    flags = models.JSONField(default=list, blank=True, help_text="disparities past the configured bounds")
    seconds = models.FloatField(default=0.0, help_text="time it took to compute")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["model_version", "created_at"], name="fairness_version_time")]

    def __str__(self) -> str:
        return f"fairness of v{self.model_version.version} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


class FeedbackWindow(models.Model):
    """Feedback-loop figures of one time window, from the stream and the provenance rows:
    exposure concentration (echo chamber) and consumption diversity and homogenisation
    (filter bubble). See ``fairness.feedback``."""

    start = models.DateTimeField()
    end = models.DateTimeField()
    computed_at = models.DateTimeField()
    figures = models.JSONField(default=dict)

    class Meta:
        ordering = ["start"]
        constraints = [models.UniqueConstraint(fields=["start", "end"], name="feedback_window_unique")]

    def __str__(self) -> str:
        return f"feedback {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"


class ServedFairnessReport(models.Model):
    """Fairness of what was actually served in one window (a day), per demographic group, from
    the provenance rows and the stream: how often each group's lists were followed by a watch
    (with a bootstrap interval), how often it got a cold-start or explored answer, the genre
    variety and popularity of what it was shown against what it watched, and exposure over the
    catalogue. See ``fairness.served``."""

    start = models.DateTimeField()
    end = models.DateTimeField()
    computed_at = models.DateTimeField()
    follow_hours = models.FloatField(help_text="an answer counts as followed by a watch started this soon after it")
    bootstrap = models.PositiveIntegerField(help_text="resamples behind each interval (0: none)")
    seed = models.PositiveIntegerField(default=0)
    min_group_viewers = models.PositiveIntegerField(help_text="smaller groups are shown, flagged, not compared")
    answers = models.PositiveIntegerField(default=0)
    figures = models.JSONField(default=dict)
    flags = models.JSONField(default=list, blank=True, help_text="disparities past the configured bounds")
    seconds = models.FloatField(default=0.0, help_text="time it took to compute")

    class Meta:
        ordering = ["-start"]
        verbose_name = "fairness of what was served"
        verbose_name_plural = "fairness of what was served"
        constraints = [models.UniqueConstraint(fields=["start", "end"], name="served_fairness_window_unique")]

    def __str__(self) -> str:
        return f"fairness served {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"
