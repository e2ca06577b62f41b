"""The read replica on real MariaDB replication: the replica ``scripts/services.sh`` starts
(127.0.0.1:13316, following the primary by GTID), the test database reaching it by replication
from the primary. Runs in the MariaDB pass only."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog.models import Movie, Viewer, Watch
from core.replica import PRIMARY_COOKIE, REPLICA, replica_reads, replica_status
from fairness.feedback import feedback_windows_compute
from fairness.models import FeedbackWindow

pytestmark = [
    pytest.mark.integration,
    pytest.mark.mysql,
    pytest.mark.django_db(transaction=True, databases=["default", REPLICA]),
]

ROOT = Path(__file__).resolve().parents[2]
REPLICA_PORT = int(os.environ.get("MARIADB_REPLICA_PORT", "13316"))
SOCKET = ROOT / ".services" / "mariadb-replica" / "mysqld.sock"


def _replica_as_root(sql: str) -> None:
    subprocess.run(["mariadb", "--no-defaults", f"--socket={SOCKET}", "-uroot", "-e", sql], check=True)


def _services(action: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "services.sh"), action, "mariadb-replica"], check=True, timeout=120)


def _caught_up() -> None:
    """Waits until the replica has applied everything the primary has committed so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@gtid_binlog_pos")
        (position,) = cursor.fetchone()
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT MASTER_GTID_WAIT(%s, 30)", [position])
        (waited,) = cursor.fetchone()
    assert waited == 0, f"the replica did not reach the primary's {position} within 30 s"


@pytest.fixture(scope="module", autouse=True)
def replica_database(django_db_setup: None) -> Iterator[None]:
    """The ``replica`` database, as DATABASE_REPLICA_URL makes it, on the test database's
    replicated copy. Added after the test databases are made (the test runner would point a
    mirror at the primary) and before the tests ask for it (a test may only use the databases it
    names); a mirror, so that no test flushes it."""
    default = connections["default"].settings_dict
    connections.settings[REPLICA] = {
        **default,
        "HOST": "127.0.0.1",
        "PORT": str(REPLICA_PORT),
        "OPTIONS": {**default["OPTIONS"], "connect_timeout": 2},
        "TEST": {**default["TEST"], "MIRROR": "default"},
    }
    try:
        yield
    finally:
        connections[REPLICA].close()
        del connections.settings[REPLICA]


@pytest.fixture
def replica(settings: object) -> None:
    """Every read of the replica's status is a fresh check, and it holds what the primary has."""
    settings.DATABASE_REPLICA_CHECK_SECONDS = 0  # type: ignore[attr-defined]
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 10  # type: ignore[attr-defined]
    _caught_up()


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "a long password"))
    return client


def _movie(slug: str) -> Movie:
    return Movie.objects.create(slug=slug, title=slug, year=2000, genres=["Drama"])


def test_a_write_on_the_primary_is_read_back_from_the_replica(replica: None) -> None:
    _movie("the+replica+2000")
    _caught_up()
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT @@server_id, @@read_only")
        assert cursor.fetchone() == (2, 1)  # the replica server, not the primary
    with CaptureQueriesContext(connections[REPLICA]) as on_replica, replica_reads() as status:
        assert status.usable
        assert status.lag_seconds is not None
        assert status.lag_seconds <= 10
        assert Movie.objects.get(slug="the+replica+2000").title == "the+replica+2000"
        # A change and the reads of its transaction are the primary's.
        with transaction.atomic():
            movie = Movie.objects.get(slug="the+replica+2000")
            movie.title = "changed"
            movie.save()
    # Besides the status check, the one read outside the transaction.
    assert [query["sql"] for query in on_replica.captured_queries if "catalog_movie" in query["sql"]] == [
        on_replica.captured_queries[-1]["sql"]
    ]
    assert Movie.objects.get(slug="the+replica+2000").title == "changed"
    # Outside replica_reads, nothing is read from it.
    with CaptureQueriesContext(connections[REPLICA]) as outside:
        Movie.objects.count()
    assert not outside.captured_queries


def test_the_console_reads_from_the_replica_and_a_browser_that_changed_something_from_the_primary(
    replica: None, operator: Client
) -> None:
    _caught_up()  # the operator's account
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        page = operator.get(reverse("admin:catalog_movie_changelist"))
    assert page.status_code == 200
    assert any("catalog_movie" in query["sql"] for query in on_replica.captured_queries)
    overview = operator.get(reverse("admin:index")).content.decode()
    assert "Reads from the replica (0 s behind the primary)." in overview
    # A change (any POST to the console; here logging out): the next pages read the primary.
    changed = operator.post(reverse("admin:logout"))
    assert PRIMARY_COOKIE in changed.cookies
    operator.force_login(User.objects.get(username="ops"))
    with CaptureQueriesContext(connections[REPLICA]) as after_change:
        operator.get(reverse("admin:catalog_movie_changelist"))
    assert not any("catalog_movie" in query["sql"] for query in after_change.captured_queries)


def test_the_feedback_job_reads_the_replica_and_writes_its_windows_on_the_primary(replica: None) -> None:
    movie = _movie("watched+2000")
    viewer = Viewer.objects.create(id=7, age=30, gender="F", occupation="scientist")
    day = datetime(2026, 11, 30, tzinfo=UTC)
    at = day + timedelta(hours=3)
    Watch.objects.create(viewer=viewer, movie=movie, first_seen_at=at, last_seen_at=at, minutes_watched=2)
    _caught_up()
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        windows = feedback_windows_compute(since=day, until=day + timedelta(days=1))
    assert any("catalog_watch" in query["sql"] for query in on_replica.captured_queries)
    assert [window.start for window in windows] == [day]
    assert FeedbackWindow.objects.using("default").filter(start=day).exists()


def test_reads_go_back_to_the_primary_while_the_replica_is_stopped_and_return_when_it_is_back(
    replica: None, operator: Client
) -> None:
    _movie("still+here+2000")
    _caught_up()
    _services("stop")
    try:
        status = replica_status(fresh=True)
        assert (status.usable, status.reason) == (False, "unreachable")
        with replica_reads():
            assert Movie.objects.get(slug="still+here+2000").title == "still+here+2000"
        page = operator.get(reverse("admin:index")).content.decode()
        assert "The replica does not answer: its reads are on the primary." in page
        assert 'id="replica-away"' in operator.get(reverse("admin:catalog_movie_changelist")).content.decode()
    finally:
        _services("start")
    _movie("written+while+away+2000")
    _caught_up()  # it catches up on what the primary wrote while it was away
    assert replica_status(fresh=True).usable
    with replica_reads():
        assert Movie.objects.filter(slug="written+while+away+2000").exists()


def test_a_replica_that_falls_behind_past_the_bound_or_stops_replicating_is_not_used(
    replica: None, settings: object
) -> None:
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 1  # type: ignore[attr-defined]
    _replica_as_root("STOP REPLICA; CHANGE MASTER TO MASTER_DELAY=30; START REPLICA")
    try:
        _movie("delayed+2000")
        deadline = time.monotonic() + 15
        while (status := replica_status(fresh=True)).reason != "lagging" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status.reason == "lagging"
        assert status.lag_seconds is not None
        assert status.lag_seconds > 1
        with replica_reads():
            assert Movie.objects.filter(slug="delayed+2000").exists()  # read on the primary
        _replica_as_root("STOP REPLICA SQL_THREAD")
        assert replica_status(fresh=True).reason == "not_replicating"
        assert "does not replicate" in replica_status().summary
    finally:
        _replica_as_root("STOP REPLICA; CHANGE MASTER TO MASTER_DELAY=0; START REPLICA")
    _caught_up()
    # Seconds_Behind_Master is the age of the last event the SQL thread applied, so for a
    # moment after catching up on delayed events it still reads a few seconds: the replica is
    # used again once the server itself reports it within the bound.
    deadline = time.monotonic() + 15
    while not (status := replica_status(fresh=True)).usable and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status.usable, status
