from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule, Success
from django_q.scheduler import scheduler

from recommender.models import ModelVersion


def test_setup_schedules_is_idempotent(db, settings):
    settings.RETRAIN_EVERY_MINUTES = 60

    call_command("setup_schedules")
    call_command("setup_schedules")

    schedule = Schedule.objects.get()
    assert schedule.func == "recommender.tasks.model_retrain"
    assert schedule.minutes == 60
    assert schedule.repeats == -1


def test_setup_schedules_applies_a_changed_interval(db, settings):
    call_command("setup_schedules")
    settings.RETRAIN_EVERY_MINUTES = 15

    call_command("setup_schedules")

    assert Schedule.objects.get().minutes == 15


def test_django_q_runs_the_scheduled_retraining(watched_world):
    call_command("setup_schedules")
    Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=1))

    # The cluster's scheduler creates the task; in sync mode (test settings) it runs right here.
    scheduler(broker=get_broker())

    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.STABLE
    assert version.status_changes.first().actor == "schedule"
    assert Success.objects.get().result == 1
    assert Schedule.objects.get().next_run > timezone.now()
