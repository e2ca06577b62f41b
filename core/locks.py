"""Named locks in the database, the same on SQLite and MariaDB, for work that must not run twice
at once across processes and hosts (a training started by the schedule and one by a person).

Taking a lock is one conditional UPDATE ("set the holder where there is none, or where the
holder is older than ``stale_after``"): atomic on both databases, with no table lock and no
advisory-lock function that only one of them has.

A holder names its host and process (``host:pid:token``). A holder on this host whose process is
gone, or whose pid now belongs to a process started after the lock was taken, is dead: the lock
is taken over at once (a worker killed by SIGKILL or a deploy does not block the next training).
A holder on another host is honoured until ``stale_after``, since its liveness cannot be seen.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.models import NamedLock
from core.processes import process_started_at


class LockHeld(Exception):
    """Someone else holds the lock; the message says who and since when."""

    def __init__(self, name: str, holder: str, since: datetime | None) -> None:
        when = f" since {since:%Y-%m-%d %H:%M:%S} UTC" if since else ""
        super().__init__(f"{name} is held by {holder or 'another process'}{when}")
        self.holder = holder


def lock_holder_new() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lock_holder_is_here(holder: str) -> bool:
    """True when ``holder`` is a process of this host."""
    return holder.partition(":")[0] == socket.gethostname()


def lock_holder_is_dead(holder: str, *, acquired_at: datetime | None) -> bool:
    """True when ``holder`` is a process of this host that is gone (its pid unused, or reused by
    a process started after ``acquired_at``). False when alive, or of another host: unknown."""
    pid = holder.partition(":")[2].partition(":")[0]
    if not lock_holder_is_here(holder) or not pid.isdigit():
        return False
    started = process_started_at(int(pid))
    # A second's slack: the start time is known to a clock tick, the lock's time to the database's.
    return started is None or (acquired_at is not None and started > acquired_at + timedelta(seconds=1))


def lock_acquire(name: str, *, holder: str, stale_after: timedelta) -> bool:
    """Take the lock for ``holder``; False when another live holder has it."""
    try:
        with transaction.atomic():
            NamedLock.objects.get_or_create(name=name)
    except IntegrityError:
        pass  # another process created the row a moment ago
    now = timezone.now()
    free = Q(holder="") | Q(acquired_at__lt=now - stale_after)
    current = NamedLock.objects.filter(name=name).values_list("holder", "acquired_at").first()
    if current and current[0] and lock_holder_is_dead(current[0], acquired_at=current[1]):
        # Only that dead holder is replaced: a live process that took it a moment ago keeps it.
        free |= Q(holder=current[0])
    return NamedLock.objects.filter(free, name=name).update(holder=holder, acquired_at=now) == 1


def lock_release_dead(name: str) -> str:
    """Free ``name`` when its holder is dead (``lock_holder_is_dead``); the holder freed, or ""."""
    current = NamedLock.objects.filter(name=name).values_list("holder", "acquired_at").first()
    if not current or not current[0] or not lock_holder_is_dead(current[0], acquired_at=current[1]):
        return ""
    NamedLock.objects.filter(name=name, holder=current[0]).update(holder="", acquired_at=None)
    return str(current[0])


def lock_release(name: str, *, holder: str) -> None:
    NamedLock.objects.filter(name=name, holder=holder).update(holder="", acquired_at=None)


@contextmanager
def named_lock(name: str, *, stale_after: timedelta) -> Iterator[str]:
    """Hold the lock for the block, or raise ``LockHeld`` at once if someone else does."""
    holder = lock_holder_new()
    if not lock_acquire(name, holder=holder, stale_after=stale_after):
        current = NamedLock.objects.filter(name=name).values_list("holder", "acquired_at").first()
        raise LockHeld(name, *(current or ("", None)))
    try:
        yield holder
    finally:
        lock_release(name, holder=holder)
