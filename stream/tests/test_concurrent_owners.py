"""Two consumers storing the same viewer's lines at once, as while a rebalance hands a partition
from one owner to the next (runs in the MariaDB pass only: SQLite has one writer at a time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import MySQLdb
import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import Movie, Viewer, Watch
from stream import metrics, services
from stream.services import KnownIds, stream_ingest_batch

pytestmark = [pytest.mark.integration, pytest.mark.mysql, pytest.mark.django_db(transaction=True)]


def _watch_lines(viewer: int, slug: str, minutes: range) -> list[str]:
    return [f"2023-10-01T12:{minute:02d}:00,{viewer},GET /data/m/{slug}/{minute}.mpg" for minute in minutes]


def _in_threads(*jobs: Callable[[], Any]) -> list[BaseException]:
    """Run each job in a thread of its own (its own database connection); the errors raised."""
    errors: list[BaseException] = []

    def run(job: Callable[[], Any]) -> None:
        try:
            job()
        except BaseException as error:  # noqa: BLE001 - reported to the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_two_owners_merging_the_same_new_watch_at_once_keep_both_their_minutes(monkeypatch):
    movie = Movie.objects.create(slug="heat+1995", title="Heat", year=1995)
    Viewer.objects.create(id=7)
    # Both found no row before either wrote: the moment the race is about.
    both_looked = threading.Barrier(2, timeout=20)
    real = services._watches_locked
    looked = threading.local()

    def look_then_wait(keys: set[tuple[int, int]]) -> dict[tuple[int, int], Watch]:
        found = real(keys)
        if not getattr(looked, "once", False):
            looked.once = True
            both_looked.wait()
        return found

    monkeypatch.setattr(services, "_watches_locked", look_then_wait)

    def owner(minutes: range) -> Callable[[], Any]:
        known = KnownIds(viewers={7}, movies={movie.slug: movie.pk})
        return lambda: stream_ingest_batch(lines=_watch_lines(7, movie.slug, minutes), known=known)

    errors = _in_threads(owner(range(0, 10)), owner(range(5, 20)))

    assert errors == []
    watch = Watch.objects.get(viewer_id=7, movie=movie)
    assert watch.minutes_watched == 20
    assert all(watch.has_watched(minute) for minute in range(20))


def _raw_connection() -> MySQLdb.Connection:
    db = connection.settings_dict
    raw = MySQLdb.connect(
        host=db["HOST"], port=int(db["PORT"]), user=db["USER"], password=db["PASSWORD"], database=db["NAME"]
    )
    raw.autocommit(False)
    return raw


def test_a_batch_that_loses_a_deadlock_to_another_writer_is_run_again_and_stored_once():
    heat = Movie.objects.create(slug="heat+1995", title="Heat", year=1995)
    ronin = Movie.objects.create(slug="ronin+1998", title="Ronin", year=1998)
    Viewer.objects.create(id=7)
    stored = Watch(viewer_id=7, movie=heat)
    stored.merge(minutes=[0], first_seen_at=timezone.now(), last_seen_at=timezone.now())
    stored.save()
    conflicts_before = metrics.BATCH_LOCK_CONFLICTS._value.get()

    # The other writer: a transaction that has written much (so the database rolls the batch
    # back, the lighter of the two) and holds a new watch of the batch's viewer, uncommitted.
    other = _raw_connection()
    try:
        cursor = other.cursor()
        cursor.executemany(
            "INSERT INTO catalog_viewer (id, gender, occupation, created_at) VALUES (%s, '', '', NOW())",
            [(1000 + i,) for i in range(2000)],
        )
        cursor.execute(
            "INSERT INTO catalog_watch (viewer_id, movie_id, minutes_bitmap, minutes_watched, max_minute,"
            " first_seen_at, last_seen_at) VALUES (7, %s, %s, 1, 9, NOW(), NOW())",
            (ronin.pk, (1 << 9).to_bytes(2, "little")),
        )
        lines = [
            "2023-10-01T12:01:00,7,GET /data/m/heat+1995/1.mpg",
            "2023-10-01T12:02:00,7,GET /data/m/ronin+1998/2.mpg",
        ]
        results: list[services.BatchResult] = []
        known = KnownIds(viewers={7}, movies={heat.slug: heat.pk, ronin.slug: ronin.pk})
        batch = threading.Thread(
            target=lambda: _in_threads(
                lambda: results.append(services._ingest_resilient(lines=lines, source="test", known=known, retries=0))
            )
        )
        batch.start()
        # The batch has locked Heat's row and waits for the other writer's Ronin row.
        batch.join(1.5)
        assert batch.is_alive(), f"the batch did not wait for the other writer: {results}"
        # The other writer wants Heat's row: a deadlock, the database rolls back the batch.
        cursor.execute("SELECT id FROM catalog_watch WHERE viewer_id = 7 AND movie_id = %s FOR UPDATE", (heat.pk,))
        other.commit()
        batch.join(30)
    finally:
        other.close()

    assert [(result.lines, result.rejected) for result in results] == [(2, 0)]
    assert metrics.BATCH_LOCK_CONFLICTS._value.get() == conflicts_before + 1
    minutes = {
        watch.movie_id: [minute for minute in range(12) if watch.has_watched(minute)]
        for watch in Watch.objects.filter(viewer_id=7)
    }
    assert minutes == {heat.pk: [0, 1], ronin.pk: [2, 9]}
