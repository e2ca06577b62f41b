"""The ingester when MariaDB drops its connection mid-stream (runs in the MariaDB pass only)."""

import MySQLdb
import pytest
from django.conf import settings
from django.db import connection

from catalog.models import Rating
from stream.models import IngestRun
from stream.services import stream_consume
from stream.sources import IterableSource

pytestmark = [pytest.mark.integration, pytest.mark.mysql, pytest.mark.django_db(transaction=True)]


def _kill(connection_id: int) -> None:
    db = settings.DATABASES["default"]
    admin = MySQLdb.connect(host=db["HOST"], port=int(str(db["PORT"])), user=db["USER"], password=db["PASSWORD"])
    admin.cursor().execute(f"KILL CONNECTION {connection_id}")
    admin.close()


def test_the_runs_counts_are_saved_again_after_the_database_drops_the_connection(monkeypatch, caplog):
    monkeypatch.setattr("stream.services.time.sleep", lambda seconds: None)
    lines = [f"2023-10-01T12:00:00,{viewer},GET /rate/movie+{viewer}+2000=4" for viewer in range(1, 41)]

    class KillingSource(IterableSource):
        """Kills the connection after each batch is stored, before the run's counts are saved."""

        def commit(self):
            with connection.cursor() as cursor:
                cursor.execute("SELECT CONNECTION_ID()")
                _kill(cursor.fetchone()[0])

    run = stream_consume(source=KillingSource(lines), batch_size=20)

    assert IngestRun.objects.get(pk=run.pk).lines == 40
    assert "could not save the ingest run record" not in caplog.text


def test_ingestion_reconnects_after_the_database_drops_the_connection(monkeypatch, caplog):
    monkeypatch.setattr("stream.services.time.sleep", lambda seconds: None)
    lines = [
        f"2023-10-01T12:00:{second:02d},{viewer},GET /rate/movie+{viewer}+2000=4"
        for viewer in range(1, 41)
        for second in (0, 1)
    ]
    killed: list[int] = []

    def kill_once(run, result):
        """Kills the consumer's database connection once, after the first batch and the run's
        counts are stored: the next batch's write meets the dropped connection."""
        if not killed:
            with connection.cursor() as cursor:
                cursor.execute("SELECT CONNECTION_ID()")
                killed.append(cursor.fetchone()[0])
            _kill(killed[0])

    run = stream_consume(source=IterableSource(lines), batch_size=20, on_batch=kill_once)

    assert killed
    assert "batch write failed ((2013, 'Lost connection to server during query')); retrying once" in caplog.text
    assert run.status == IngestRun.Status.FINISHED
    assert Rating.objects.count() == 80
