"""Provenance: one row per answer served, linking viewer, model version, pool and time.

With the registry (model version, its data snapshot and code revision) a row answers "why did
viewer V see movie M at time T".
"""

from __future__ import annotations

from django.db import models


class Recommendation(models.Model):
    """One answered ``/recommend`` request: who got what, from which model version and pool.

    With ``ModelVersion`` and ``DataSnapshot`` this answers "why did viewer V see movie M at
    time T": the model, its metrics, its data and its code. Written in batches off the request
    thread (``provenance.recorder``); unique on the request id, so a retried batch adds nothing.
    """

    class Pool(models.TextChoices):
        STABLE = "stable"
        CANARY = "canary"

    class Strategy(models.TextChoices):
        PERSONALIZED = "personalized"
        HISTORY = "history", "history (scored now)"
        COLD_START = "cold-start"
        FAILED = "failed", "failed (no list)"

    request_id = models.CharField(max_length=64, unique=True, help_text="made by recsite for this answer")
    caller_request_id = models.CharField(
        max_length=64, blank=True, help_text="the X-Request-Id the caller sent, if any (not unique)"
    )
    viewer_id = models.PositiveIntegerField(help_text="the platform's user id as requested")
    model_version = models.ForeignKey(
        "recommender.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="recommendations"
    )
    pool = models.CharField(max_length=8, choices=Pool.choices)
    strategy = models.CharField(max_length=32, choices=Strategy.choices, help_text="how the list was made")
    degraded = models.BooleanField(
        default=False,
        help_text="answered without the database (the viewer's history as at training) or by an older version "
        "standing in for a damaged artifact",
    )
    items = models.TextField(help_text="movie ids in the order served, comma-separated")
    explored = models.TextField(
        blank=True, default="", help_text="those of the items placed by exploration, comma-separated"
    )
    status = models.PositiveSmallIntegerField(default=200)
    latency_ms = models.FloatField()
    served_at = models.DateTimeField()
    host = models.CharField(max_length=100, help_text="host and worker process that answered")

    class Meta:
        ordering = ["-served_at"]
        indexes = [
            models.Index(fields=["viewer_id", "served_at"], name="recommendation_viewer_time"),
            models.Index(fields=["model_version", "served_at"], name="recommendation_version_time"),
            models.Index(fields=["served_at"], name="recommendation_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}: viewer {self.viewer_id} at {self.served_at:%Y-%m-%d %H:%M:%S}"

    @property
    def item_list(self) -> list[str]:
        return self.items.split(",") if self.items else []

    @property
    def explored_list(self) -> list[str]:
        return self.explored.split(",") if self.explored else []


class ServedMinute(models.Model):
    """The answers of one pool in one minute, counted per latency bucket: what the console's
    traffic charts read, a few hundred rows for hours of answers however many there are.

    Recomputed from the answers by ``provenance.rollup`` each time answers of that minute are
    written, so it holds what the table holds (see there why a concurrent writer cannot leave
    it behind)."""

    minute = models.DateTimeField(help_text="the minute's start (UTC)")
    pool = models.CharField(max_length=8, choices=Recommendation.Pool.choices)
    requests = models.PositiveIntegerField(help_text="answers served in the minute")
    errors = models.PositiveIntegerField(help_text="of those, answers with a 5xx status")
    latency_counts = models.JSONField(
        help_text="answers per latency bucket: under each bound of LATENCY_BOUNDS_MS (ms), then the rest"
    )

    class Meta:
        ordering = ["minute", "pool"]
        constraints = [models.UniqueConstraint(fields=["minute", "pool"], name="served_minute_unique")]

    def __str__(self) -> str:
        return f"{self.pool} at {self.minute:%Y-%m-%d %H:%M}: {self.requests} answers"
