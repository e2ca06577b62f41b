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
    """Start a canary for a version that passed the gate (RELEASE_AUTO_START). A premise gone
    by the time the task runs (a person released the version, or another one, first) ends the
    task with what ``release_start`` found: a failed task would be retried by django-q2 an hour
    later."""
    candidate = ModelVersion.objects.filter(pk=version_id).first()
    if candidate is None:
        return f"not started: version {version_id} is gone"
    try:
        return str(release_start(candidate=candidate, actor="training"))
    except ReleaseError as error:
        return f"not started: {error}"
