import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from core.locks import LockHeld, lock_acquire, lock_release, named_lock

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


HOUR = timedelta(hours=1)


def test_a_held_lock_refuses_a_second_holder_until_it_is_released(db):
    assert lock_acquire("job", holder="a", stale_after=HOUR)
    assert not lock_acquire("job", holder="b", stale_after=HOUR)

    lock_release("job", holder="a")

    assert lock_acquire("job", holder="b", stale_after=HOUR)


def test_only_the_holder_releases_a_lock(db):
    lock_acquire("job", holder="a", stale_after=HOUR)

    lock_release("job", holder="b")

    assert not lock_acquire("job", holder="c", stale_after=HOUR)


def test_a_lock_whose_holder_died_is_taken_over_once_stale(db):
    lock_acquire("job", holder="killed", stale_after=HOUR)

    with time_machine.travel(timezone.now() + HOUR + timedelta(seconds=1)):
        assert lock_acquire("job", holder="next", stale_after=HOUR)


def test_named_lock_says_who_holds_it(db):
    lock_acquire("job", holder="host-a:41", stale_after=HOUR)

    with pytest.raises(LockHeld, match=r"job is held by host-a:41 since \d{4}-"), named_lock("job", stale_after=HOUR):
        pass


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_two_processes_taking_the_lock_at_once_get_it_once():
    barrier = threading.Barrier(8)
    won: list[str] = []

    def take(name: str) -> None:
        try:
            barrier.wait(timeout=30)
            if lock_acquire("job", holder=name, stale_after=HOUR):
                won.append(name)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(f"t{number}",)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(won) == 1


def test_a_lock_whose_holder_on_this_host_is_gone_is_taken_over_at_once(db, dead_pid):
    import socket

    lock_acquire("job", holder=f"{socket.gethostname()}:{dead_pid}:abcd", stale_after=HOUR)

    assert lock_acquire("job", holder="next", stale_after=HOUR)


def test_a_lock_whose_holder_on_this_host_is_alive_is_kept(db):
    from core.locks import lock_holder_new

    lock_acquire("job", holder=lock_holder_new(), stale_after=HOUR)

    assert not lock_acquire("job", holder="next", stale_after=HOUR)


def test_a_reused_pid_does_not_keep_a_dead_holder_alive(db):
    import os
    import socket

    from core.models import NamedLock
    from core.processes import process_started_at

    # The lock was taken in this pid's name before this process started: by another process.
    lock_acquire("job", holder=f"{socket.gethostname()}:{os.getpid()}:abcd", stale_after=HOUR)
    started = process_started_at(os.getpid())
    assert started is not None
    NamedLock.objects.filter(name="job").update(acquired_at=started - timedelta(minutes=5))

    assert lock_acquire("job", holder="next", stale_after=HOUR)


def test_a_holder_on_another_host_is_honoured_until_stale(db):
    lock_acquire("job", holder="elsewhere:1:abcd", stale_after=HOUR)

    assert not lock_acquire("job", holder="next", stale_after=HOUR)


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_a_task_after_the_database_dropped_its_persistent_connection_takes_the_lock(monkeypatch):
    import MySQLdb
    from django.conf import settings
    from django.db import close_old_connections

    # The worker's connection, kept between tasks (CONN_MAX_AGE), is dropped by the server (a
    # restart): the next task's first statement is an autocommit switch, not a query.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        (connection_id,) = cursor.fetchone()
    db = settings.DATABASES["default"]
    admin = MySQLdb.connect(host=db["HOST"], port=int(str(db["PORT"])), user=db["USER"], password=db["PASSWORD"])
    admin.cursor().execute(f"KILL CONNECTION {connection_id}")
    admin.close()

    close_old_connections()  # what django-q2 does before each task

    assert lock_acquire("job-after-restart", holder="worker", stale_after=HOUR)
