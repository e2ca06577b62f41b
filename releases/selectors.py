"""Reads about releases that serving and the console need."""

from __future__ import annotations

from releases.models import Release


def release_canary_weight() -> int:
    """The canary's share of traffic now, in percent (0 when no release is running)."""
    weight = (
        Release.objects.filter(state__in=[Release.State.CANARY, Release.State.PAUSED])
        .values_list("weight", flat=True)
        .first()
    )
    return weight or 0
