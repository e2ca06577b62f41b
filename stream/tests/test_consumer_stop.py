import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog.models import Rating
from stream import services
from stream.models import IngestRun
from stream.services import ConsumerStop, stream_consume
from stream.sources import IterableSource

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


ROOT = Path(__file__).resolve().parents[2]
LINES = [
    f"2023-10-01T12:00:{second:02d},{viewer},GET /rate/movie+{viewer}+2000=4"
    for viewer in range(1, 21)
    for second in (0,)
]


@pytest.mark.django_db
def test_a_stop_requested_during_a_batch_finishes_and_commits_it_then_stops(monkeypatch):
    stop = ConsumerStop()
    committed = []

    class RecordingSource(IterableSource):
        def commit(self):
            committed.append(True)

    real = services._ingest_resilient

    def signalled_mid_write(**kwargs):
        stop.handle(signal.SIGTERM, None)  # docker stop, while the first batch is being written
        return real(**kwargs)

    monkeypatch.setattr(services, "_ingest_resilient", signalled_mid_write)

    run = stream_consume(source=RecordingSource(LINES), batch_size=5, stop=stop)

    assert (run.status, run.lines, run.error) == (IngestRun.Status.STOPPED, 5, "stopped by SIGTERM")
    assert committed == [True]  # the batch in flight was finished and committed, no other read
    assert Rating.objects.count() == 5
    assert run.finished_at is not None


@pytest.mark.slow
def test_sigterm_ends_a_waiting_consumer_cleanly_and_records_the_stop(tmp_path):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "recsite.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'recsite.sqlite3'}",
        "VAR_DIR": str(tmp_path),
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=environment, check=True)
    consumer = subprocess.Popen(
        [*manage, "consume_stream", "--source", "file:-", "--batch-size", "5"],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert consumer.stdin is not None
    consumer.stdin.write("".join(f"{line}\n" for line in LINES[:10]).encode())
    consumer.stdin.flush()  # and kept open: the consumer waits for more, as on a live stream

    database = sqlite3.connect(tmp_path / "recsite.sqlite3")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if database.execute("SELECT COUNT(*) FROM catalog_rating").fetchone()[0] == 10:
            break
        time.sleep(0.2)
    consumer.send_signal(signal.SIGTERM)
    _, errors = consumer.communicate(timeout=30)

    assert consumer.returncode == 0, errors.decode()
    status, lines, error, finished = database.execute(
        "SELECT status, lines, error, finished_at FROM stream_ingestrun"
    ).fetchone()
    assert (status, lines, error) == ("stopped", 10, "stopped by SIGTERM")
    assert finished is not None
