"""django-q2 tasks for releases: thin doors into the services."""

from __future__ import annotations

from recommender.models import ModelVersion
from releases.services import ReleaseError, release_active, release_evaluate, release_start


def release_evaluate_active() -> str:
    """The scheduled canary check."""
    release = release_active()
    if release is None:
        return "no release running"
    try:
        run = release_evaluate(release=release)
    except ReleaseError as error:
        # A person decided during the check, or Prometheus did not answer: the result says so.
        return f"{release}: not checked: {error}"
    return f"{release}: {run.verdict} -> {run.action}" if run else f"{release}: not checked ({release.state})"


def release_start_candidate(version_id: int) -> str:
    """Start a canary for a version that passed the gate (RELEASE_AUTO_START)."""
    release = release_start(candidate=ModelVersion.objects.get(pk=version_id), actor="training")
    return str(release)
