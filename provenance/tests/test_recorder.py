import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import OperationalError
from django.utils import timezone
from prometheus_client import REGISTRY

from provenance.models import Recommendation
from provenance.recorder import RecommendationRecorder
from provenance.spool import Spool, line_to_row, process_owner, row_to_line, spool_directory, spool_recover

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


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

    # Wait on the recorder's own queue, not on the table: on SQLite's shared in-memory test
    # database a read racing the writer thread's insert fails with "table is locked".
    deadline = time.monotonic() + 10
    while background.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    background.stop()

    assert Recommendation.objects.filter(request_id="r-bg").exists()
    assert background.pending == 0


def test_every_recorded_row_is_in_the_spool_before_it_is_written(fresh_recorder):
    for number in range(3):
        fresh_recorder.record(_row(f"s{number}"))

    lines = b"".join(path.read_bytes() for path in spool_directory().glob(f"{process_owner()}-*.jsonl"))
    assert {line_to_row(line).request_id for line in lines.splitlines()} >= {"s0", "s1", "s2"}

    assert fresh_recorder.flush() is True
    assert Recommendation.objects.filter(request_id__startswith="s").count() == 3
    assert not list(spool_directory().glob(f"{process_owner()}-*.sealed.jsonl"))  # written: deleted


def test_rows_of_a_killed_worker_are_written_by_the_next_one(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    # A real process records three answers and is killed (SIGKILL) before its writer runs.
    child = subprocess.run(
        [sys.executable, "-c", KILLED_WORKER],
        cwd=Path(__file__).resolve().parents[2],
        env={
            **os.environ,
            "VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "recsite.settings",
            "SERVING_THREADS": "0",
        },
        check=False,
    )
    assert child.returncode == -signal.SIGKILL

    recovered = RecommendationRecorder().recover()

    assert recovered == 3
    assert sorted(Recommendation.objects.values_list("request_id", flat=True)) == ["k0", "k1", "k2"]
    assert not list(spool_directory().iterdir())  # drained and deleted


def test_a_dead_writer_whose_pid_is_now_a_live_process_is_recovered(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    # The file of a worker killed in a container that restarted: the same pid (this process's),
    # another start time.
    directory = spool_directory()
    directory.mkdir(parents=True)
    stale = directory / f"{os.getpid()}.1-deadbeef.active.jsonl"
    stale.write_bytes(row_to_line(_row("reused-pid")))

    recovered = spool_recover()

    assert recovered == 1
    assert Recommendation.objects.filter(request_id="reused-pid").exists()
    assert not stale.exists()


def test_sealed_files_are_deleted_after_every_write_not_only_the_first(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    spool = Spool()
    for cycle in range(3):
        spool.append(row_to_line(_row(f"c{cycle}")))
        spool.seal()
        spool.append(row_to_line(_row(f"d{cycle}")))  # an answer arrives while the batch is written
        spool.release()

    # Only the active file of the last answer is left: every sealed file was deleted.
    assert [path.name.endswith(".active.jsonl") for path in spool_directory().iterdir()] == [True]


KILLED_WORKER = """
import os, signal, django
django.setup()
from django.utils import timezone
from provenance.models import Recommendation
from provenance.recorder import recorder
for n in range(3):
    recorder.record(Recommendation(request_id=f"k{n}", viewer_id=1, pool="stable", items="a",
                                   latency_ms=1, served_at=timezone.now(), host="t"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_rows_dropped_from_memory_in_an_outage_are_read_back_from_the_spool(fresh_recorder, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    small = RecommendationRecorder(max_pending=2, batch_size=10, interval=60)
    for number in range(5):
        small.record(_row(f"o{number}"))  # the database is away: three fall out of the queue

    assert small.flush() is True  # the two still queued
    assert Recommendation.objects.filter(request_id__startswith="o").count() == 2
    assert small.recover() == 5  # the spool had all five; the two written are not doubled

    assert sorted(Recommendation.objects.values_list("request_id", flat=True)) == [f"o{n}" for n in range(5)]
    assert not list(spool_directory().glob("*.sealed.jsonl"))


def test_a_claimed_file_whose_insert_failed_is_retried_by_its_claimer(db, settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    directory = spool_directory()
    directory.mkdir(parents=True)
    (directory / "999999999.1-deadbeef.active.jsonl").write_bytes(row_to_line(_row("retried")))

    def database_away(*args, **kwargs):
        raise OperationalError("server has gone away")

    with monkeypatch.context() as patched:
        patched.setattr(Recommendation.objects, "bulk_create", database_away)
        with pytest.raises(OperationalError):
            spool_recover()
    claimed = f"claimed-{process_owner()}-999999999.1-deadbeef.active.jsonl"
    assert [path.name for path in directory.iterdir()] == [claimed]

    assert spool_recover() == 1
    assert Recommendation.objects.filter(request_id="retried").exists()
    assert not list(directory.iterdir())


def test_a_file_claimed_by_a_process_that_died_is_claimed_again(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    directory = spool_directory()
    directory.mkdir(parents=True)
    (directory / "claimed-999999998.1-999999999.1-deadbeef.active.jsonl").write_bytes(row_to_line(_row("orphan")))

    assert spool_recover() == 1
    assert Recommendation.objects.filter(request_id="orphan").exists()
    assert not list(directory.iterdir())


@pytest.mark.django_db(transaction=True)
def test_the_writer_thread_drains_dead_workers_spools_without_a_restart(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.SERVING_THREADS = True
    settings.PROVENANCE_RECOVER_SECONDS = 0.1
    directory = spool_directory()
    directory.mkdir(parents=True)
    (directory / "999999999.1-deadbeef.active.jsonl").write_bytes(row_to_line(_row("left-behind")))
    background = RecommendationRecorder(max_pending=100, batch_size=100, interval=0.05)
    background.record(_row("live"))

    deadline = time.monotonic() + 10
    while _stored(["live", "left-behind"]) < 2:
        assert time.monotonic() < deadline, "the dead worker's row was not recovered"
        time.sleep(0.05)
    background.stop()


def _stored(request_ids: list[str]) -> int:
    """How many of these rows are stored, read while the writer thread writes: the test
    database is SQLite's shared in-memory one, whose table locks do not wait (busy_timeout does
    not apply), so a read that meets the writer's transaction is tried again."""
    from django.db import OperationalError

    try:
        return Recommendation.objects.filter(request_id__in=request_ids).count()
    except OperationalError as error:
        if "locked" not in str(error):
            raise
        return 0


def test_a_spool_line_from_before_the_degraded_flag_is_read_with_the_flag():
    from provenance.spool import line_to_row

    line = (
        b'{"request_id":"r1","caller_request_id":"","viewer_id":3,"model_version_id":null,"pool":"stable",'
        b'"strategy":"history-degraded","items":"a+1","explored":"","status":200,"latency_ms":2.0,'
        b'"host":"h:1","served_at":"2026-12-01T10:00:00+00:00"}'
    )
    row = line_to_row(line)
    assert (row.strategy, row.degraded) == ("history", True)
