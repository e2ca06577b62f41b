"""python manage.py setup_schedules: create or update every django-q2 schedule (idempotent)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone
from django_q.models import Schedule


def _schedules() -> list[dict[str, Any]]:
    return [
        {
            "name": "retrain models",
            "func": "recommender.tasks.model_retrain",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.RETRAIN_EVERY_MINUTES,
        },
        {
            "name": "feedback loops",
            "func": "fairness.tasks.feedback_windows_daily",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.FEEDBACK_EVERY_MINUTES,
        },
        {
            # Hourly, so a day is reported soon after its follow window; a done day costs a query.
            "name": "fairness of what was served",
            "func": "fairness.tasks.served_reports_daily",
            "schedule_type": Schedule.MINUTES,
            "minutes": 60,
        },
        {
            "name": "check canary",
            "func": "releases.tasks.release_evaluate_active",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.RELEASE_CHECK_MINUTES,
        },
    ]


class Command(BaseCommand):
    help = "Create or update recsite's django-q2 schedules; running it twice changes nothing."

    def handle(self, *args: Any, **options: Any) -> None:
        for spec in _schedules():
            schedule, created = Schedule.objects.get_or_create(
                name=spec["name"],
                defaults={**spec, "repeats": -1, "next_run": timezone.now() + timedelta(minutes=spec["minutes"])},
            )
            if not created:
                for key, value in spec.items():
                    setattr(schedule, key, value)
                # A shorter interval than before takes effect now, not after the old one's wait.
                soonest = timezone.now() + timedelta(minutes=spec["minutes"])
                if schedule.next_run is None or schedule.next_run > soonest:
                    schedule.next_run = soonest
                schedule.save()
            self.stdout.write(f"{'created' if created else 'updated'} schedule {schedule.name!r}: {schedule.func}")
