"""django-q2 tasks of the fairness app."""

from __future__ import annotations

from fairness.services import FairnessError, fairness_report_create
from recommender.models import ModelVersion


def fairness_report_for_version(version_id: int) -> str:
    """After a training (enqueued by name by the registry, which sits below this app)."""
    version = ModelVersion.objects.get(pk=version_id)
    try:
        report = fairness_report_create(version=version)
    except FairnessError as error:
        return f"no report for v{version.version}: {error}"
    return f"{report}: {len(report.flags)} flags"


def feedback_windows_daily() -> str:
    """The schedule's task: the feedback-loop figures of every whole window
    (``FEEDBACK_WINDOW_MINUTES``, a day unless set) of the last ``RECOMPUTED_DAYS``, or of the
    last ``RECOMPUTED_WINDOWS`` windows when they are smaller, computed again."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from fairness.feedback import RECOMPUTED_DAYS, RECOMPUTED_WINDOWS, feedback_windows_compute

    window = timedelta(minutes=settings.FEEDBACK_WINDOW_MINUTES)
    span = min(timedelta(days=RECOMPUTED_DAYS), window * RECOMPUTED_WINDOWS)
    windows = feedback_windows_compute(window=window, since=timezone.now() - span)
    return f"{len(windows)} feedback windows"


def served_reports_daily() -> str:
    """The schedule's task (hourly, doing nothing once a day is done): each past day's report on
    what was served, once its answers have had their time to be followed."""
    from fairness.served import served_reports_catch_up

    reports = served_reports_catch_up()
    return f"{len(reports)} served fairness reports" + "".join(f"; {report}" for report in reports)
