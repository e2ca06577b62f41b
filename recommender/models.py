"""The model registry: data snapshots, model versions with their lineage, and their status.

A version's status says where it is in its life (training, candidate, canary, stable, retired);
the stable version and the canary with its weight are what serving reads to know what to serve.
"""

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


class ModelVersion(models.Model):
    """A trained model registered with its full lineage: data, code, parameters, metrics, gate.

    One versioned artifact bundles a ranker (it orders the list viewers see) and a rating model
    (measured by RMSE, and kept for the gate and the fairness figures); the registry and the gate
    treat them as one thing.

    The registry is also where serving learns what to serve: the ``stable`` version, and the
    ``canary`` version with ``canary_weight``, the share of traffic the release process gives it.
    """

    class Status(models.TextChoices):
        TRAINING = "training"
        FAILED = "failed"
        CANDIDATE = "candidate"
        REJECTED = "rejected"
        CANARY = "canary"
        STABLE = "stable"
        RETIRED = "retired"

    version = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING, db_index=True)
    rating_algorithm = models.CharField(max_length=32, help_text="scikit-surprise rating model")
    ranker = models.CharField(max_length=32, help_text="model that ranks the served list")
    params = models.JSONField(default=dict, help_text="hyper-parameters of both models, and the split")
    snapshot = models.ForeignKey(
        DataSnapshot, on_delete=models.PROTECT, related_name="model_versions", null=True, blank=True
    )
    training_started_at = models.DateTimeField()
    training_finished_at = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    group_metrics = models.JSONField(default=dict, blank=True, help_text="metrics per demographic group")
    gate = models.JSONField(default=dict, blank=True, help_text="the gate's inputs, verdict and reasons")
    artifact_path = models.CharField(max_length=500, blank=True, help_text="relative to MODEL_DIR")
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    dvc_md5 = models.CharField("DVC md5", max_length=64, blank=True)
    dvc_file = models.CharField("DVC file", max_length=500, blank=True)
    code_revision = models.CharField(max_length=64, blank=True, help_text="git commit of the training code")
    error = models.TextField(blank=True)
    canary_weight = models.PositiveSmallIntegerField(
        default=0, help_text="percent of traffic while this version is the canary (set by the release process)"
    )
    # "stable" or "canary" while the version is either, else NULL. Unique, and NULLs are distinct
    # on every database, so the database itself holds the registry's invariant: at most one
    # stable and one canary version, whatever two processes decide at the same moment.
    serving_slot = models.CharField(max_length=8, null=True, blank=True, unique=True, editable=False)

    SERVING_STATUSES = (Status.STABLE, Status.CANARY)

    class Meta:
        ordering = ["-version"]
        get_latest_by = "version"

    def __str__(self) -> str:
        return f"v{self.version} ({self.ranker}+{self.rating_algorithm}, {self.status})"

    @property
    def artifact_file(self) -> Path:
        return Path(settings.MODEL_DIR) / self.artifact_path

    @property
    def rmse(self) -> float | None:
        return self.metric("rmse")

    @property
    def ndcg_at_10(self) -> float | None:
        return self.metric("ndcg@10")

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return None if value is None else float(value)

    @property
    def gate_passed(self) -> bool:
        return bool(self.gate.get("passed"))

    @property
    def gate_reasons(self) -> list[str]:
        return [str(reason) for reason in self.gate.get("reasons", [])]

    @property
    def training_seconds(self) -> float | None:
        if self.training_finished_at is None:
            return None
        return (self.training_finished_at - self.training_started_at).total_seconds()


class ModelStatusChange(models.Model):
    """Every status a version passed through, so "which version served at time T" has an answer."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, choices=ModelVersion.Status.choices)
    at = models.DateTimeField(db_index=True)
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=150, blank=True, help_text="who or what made the change")

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["to_status", "at"], name="status_change_to_at")]

    def __str__(self) -> str:
        return (
            f"v{self.model_version.version}: {self.from_status or '-'} -> {self.to_status} at {self.at:%Y-%m-%d %H:%M}"
        )
