"""django-q2 tasks: thin doors into the services."""

from __future__ import annotations

from recommender.services import model_train


def model_retrain() -> int:
    """The scheduled retraining; returns the new version number (shown in django-q2's results)."""
    return model_train(actor="schedule").version
