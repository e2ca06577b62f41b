"""Lineage: the data snapshots models are trained on."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class DataSnapshot(models.Model):
    """An immutable export of the training data at a moment, versioned with DVC.

    The files are written once under ``DATA_DIR/snapshots/<content hash>/`` and never changed;
    two exports of the same data have the same content hash and are the same snapshot.
    """

    class Status(models.TextChoices):
        OK = "ok"
        FAILED = "failed", "failed quality check"

    created_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices)
    failure_reasons = models.JSONField(default=list, blank=True)
    quality = models.JSONField(default=dict, blank=True, help_text="the data-quality check's figures")
    window_start = models.DateTimeField(null=True, blank=True, help_text="earliest event in the data")
    window_end = models.DateTimeField(null=True, blank=True, help_text="latest event in the data")
    rating_rows = models.PositiveIntegerField(help_text="current ratings (latest per viewer and movie)")
    interaction_rows = models.PositiveIntegerField(help_text="viewer-movie pairs with a rating or a watch")
    viewer_count = models.PositiveIntegerField()
    movie_count = models.PositiveIntegerField()
    path = models.CharField(max_length=500, help_text="directory, relative to DATA_DIR")
    content_hash = models.CharField(max_length=64, unique=True, help_text="sha256 over the snapshot's files")
    dvc_md5 = models.CharField("DVC md5", max_length=64, blank=True, help_text="DVC's hash of the directory")
    dvc_file = models.CharField("DVC file", max_length=500, blank=True)
    dvc_remote = models.CharField("DVC remote", max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"snapshot {self.content_hash[:12]} ({self.rating_rows:,} ratings)"

    @property
    def directory(self) -> Path:
        return Path(settings.DATA_DIR) / self.path

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.OK


class Recommendation(models.Model):
    """One answered ``/recommend`` request: who got what, from which model version and pool.

    With ``ModelVersion`` and ``DataSnapshot`` this answers "why did viewer V see movie M at
    time T": the model, its metrics, its data and its code. Written in batches off the request
    thread (``provenance.recorder``); unique on the request id, so a retried batch adds nothing.
    """

    class Pool(models.TextChoices):
        STABLE = "stable"
        CANARY = "canary"

    request_id = models.CharField(max_length=64, unique=True)
    viewer_id = models.PositiveIntegerField(help_text="the platform's user id as requested")
    model_version = models.ForeignKey(
        "recommender.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="recommendations"
    )
    pool = models.CharField(max_length=8, choices=Pool.choices)
    strategy = models.CharField(
        max_length=32, help_text="personalized, history (scored now) or cold-start; -degraded without the database"
    )
    items = models.TextField(help_text="movie ids in the order served, comma-separated")
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
