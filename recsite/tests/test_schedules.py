from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule, Success
from django_q.scheduler import scheduler

from recommender.models import ModelVersion

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


def test_setup_schedules_is_idempotent(db, settings):
    settings.RETRAIN_EVERY_MINUTES = 60

    call_command("setup_schedules")
    call_command("setup_schedules")

    assert sorted(Schedule.objects.values_list("name", "func")) == [
        ("check canary", "releases.tasks.release_evaluate_active"),
        ("fairness of what was served", "fairness.tasks.served_reports_daily"),
        ("feedback loops", "fairness.tasks.feedback_windows_daily"),
        ("retrain models", "recommender.tasks.model_retrain"),
    ]
    retrain = Schedule.objects.get(name="retrain models")
    assert (retrain.minutes, retrain.repeats) == (60, -1)


def test_setup_schedules_applies_a_changed_interval(db, settings):
    call_command("setup_schedules")
    settings.RETRAIN_EVERY_MINUTES = 15

    call_command("setup_schedules")

    assert Schedule.objects.get(name="retrain models").minutes == 15


def test_a_shorter_interval_brings_the_next_run_forward(db, settings):
    call_command("setup_schedules")  # retraining every two days: next run in two days
    settings.RETRAIN_EVERY_MINUTES = 10
    settings.FEEDBACK_EVERY_MINUTES = 5

    call_command("setup_schedules")

    soon = timezone.now() + timedelta(minutes=10, seconds=5)
    assert Schedule.objects.get(name="retrain models").next_run < soon
    feedback = Schedule.objects.get(name="feedback loops")
    assert feedback.minutes == 5
    assert feedback.next_run < soon


def test_the_feedback_task_computes_windows_of_the_size_set(watched_world, settings):
    from fairness.models import FeedbackWindow
    from fairness.tasks import feedback_windows_daily

    settings.FEEDBACK_WINDOW_MINUTES = 60
    feedback_windows_daily()
    sizes = {window.end - window.start for window in FeedbackWindow.objects.all()}
    assert sizes == {timedelta(hours=1)}


def test_django_q_runs_the_scheduled_retraining(watched_world):
    call_command("setup_schedules")
    Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=1))

    # The cluster's scheduler creates the task; in sync mode (test settings) it runs right here.
    scheduler(broker=get_broker())

    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.STABLE
    assert version.status_changes.first().actor == "schedule"
    assert Success.objects.get(func="recommender.tasks.model_retrain").result == 1
    assert Success.objects.get(func="releases.tasks.release_evaluate_active").result == "no release running"
    assert Schedule.objects.get(name="retrain models").next_run > timezone.now()
