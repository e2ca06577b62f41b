"""Reads about the registry that more than one place needs."""

from __future__ import annotations

from datetime import datetime

from recommender.models import ModelStatusChange, ModelVersion


def model_version_stable() -> ModelVersion | None:
    """The version serving everyone not in a canary now. At most one version holds the stable
    serving slot (a unique column), so no ordering is needed to choose."""
    return ModelVersion.objects.filter(status=ModelVersion.Status.STABLE).first()


def model_version_canary() -> ModelVersion | None:
    """The version in canary now, if a release is running (at most one: the canary slot)."""
    return ModelVersion.objects.filter(status=ModelVersion.Status.CANARY).first()


def model_version_stable_at(at: datetime) -> ModelVersion | None:
    """The version that was stable (serving everyone not in a canary) at ``at``.

    Promotion to stable retires the previous stable version in the same transaction, so the
    latest change *to* stable at or before ``at`` names it, unless that version had left stable
    (retired, or rolled back) by then.
    """
    change = (
        ModelStatusChange.objects.filter(to_status=ModelVersion.Status.STABLE, at__lte=at)
        .select_related("model_version")
        .order_by("-at", "-id")
        .first()
    )
    if change is None:
        return None
    left = ModelStatusChange.objects.filter(
        model_version=change.model_version, from_status=ModelVersion.Status.STABLE, at__gt=change.at, at__lte=at
    ).exists()
    return None if left else change.model_version


def model_version_canary_weight() -> int:
    """The canary's share of traffic now, in percent (0 when no version is in canary).

    The release process writes it; serving (embedded mode) and the NGINX upstreams read it.
    """
    weight = (
        ModelVersion.objects.filter(status=ModelVersion.Status.CANARY)
        .order_by("-version")
        .values_list("canary_weight", flat=True)
        .first()
    )
    return weight or 0
