import time

import pytest
from django.db import OperationalError
from django.utils import timezone
from prometheus_client import REGISTRY

from provenance.models import Recommendation
from provenance.recorder import RecommendationRecorder


def _row(request_id: str) -> Recommendation:
    return Recommendation(
        request_id=request_id, viewer_id=1, pool="stable", items="a", latency_ms=1, served_at=timezone.now(), host="t"
    )


@pytest.fixture
def fresh_recorder(db) -> RecommendationRecorder:
    return RecommendationRecorder(batch_size=100, interval=60)


def test_settings_reach_the_process_wide_recorder_when_it_is_used(settings):
    from provenance.recorder import recorder

    settings.PROVENANCE_MAX_PENDING = 123
    settings.PROVENANCE_BATCH_SIZE = 7

    assert (recorder.max_pending, recorder.batch_size) == (123, 7)


def test_provenance_survives_a_database_hiccup(fresh_recorder, monkeypatch):
    recorder = fresh_recorder
    for number in range(3):
        recorder.record(_row(f"r{number}"))
    real_bulk_create = Recommendation.objects.bulk_create
    failures = iter([OperationalError("server has gone away")])

    def flaky_bulk_create(*args, **kwargs):
        for error in failures:
            raise error
        return real_bulk_create(*args, **kwargs)

    monkeypatch.setattr(Recommendation.objects, "bulk_create", flaky_bulk_create)

    assert recorder.flush() is False  # the write failed: rows stay queued
    assert recorder.pending == 3
    assert recorder.flush() is True  # the retry writes them
    assert Recommendation.objects.count() == 3


def test_the_queue_is_bounded_and_counts_what_it_drops(db):
    before = REGISTRY.get_sample_value("recsite_provenance_dropped_total") or 0
    small = RecommendationRecorder(max_pending=2, batch_size=10, interval=60)
    for number in range(5):
        small.record(_row(f"r{number}"))

    assert small.pending == 2
    assert REGISTRY.get_sample_value("recsite_provenance_dropped_total") == before + 3


@pytest.mark.django_db(transaction=True)
def test_the_writer_thread_writes_rows_in_the_background(settings):
    settings.SERVING_THREADS = True
    background = RecommendationRecorder(max_pending=100, batch_size=100, interval=0.05)
    background.record(_row("r-bg"))

    deadline = time.monotonic() + 10
    while not Recommendation.objects.filter(request_id="r-bg").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    background.stop()

    assert Recommendation.objects.filter(request_id="r-bg").exists()
    assert background.pending == 0
