"""What the serving hosts found wrong with what they were asked to serve."""

from __future__ import annotations

from django.db import models

from recommender.models import ModelVersion


class ArtifactFault(models.Model):
    """A served artifact that stopped matching its sha256 on a host, and the older version that
    answered in its place (none: there was no good older artifact, so the damaged one went on).
    One row per version and host: every worker of the host finds the same fault."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="artifact_faults")
    host = models.CharField(max_length=255)
    pool = models.CharField(max_length=16)
    detected_at = models.DateTimeField()
    detail = models.TextField()
    stand_in = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        related_name="stood_in_for",
        null=True,
        blank=True,
        help_text="the older version served instead (its answers are recorded as degraded)",
    )

    class Meta:
        ordering = ["-detected_at"]
        constraints = [models.UniqueConstraint(fields=["model_version", "host"], name="one_fault_per_version_and_host")]

    def __str__(self) -> str:
        return f"v{self.model_version.version} corrupt on {self.host}"
