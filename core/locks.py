"""Named locks in the database, the same on SQLite and MariaDB, for work that must not run twice
at once across processes and hosts (a training started by the schedule and one by a person).

Taking a lock is one conditional UPDATE ("set the holder where there is none, or where the
holder is older than ``stale_after``"): atomic on both databases, with no table lock and no
advisory-lock function that only one of them has. A holder killed without releasing (SIGKILL,
out of memory) blocks the next taker for ``stale_after`` at most.
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


class LockHeld(Exception):
    """Someone else holds the lock; the message says who and since when."""

    def __init__(self, name: str, holder: str, since: datetime | None) -> None:
        when = f" since {since:%Y-%m-%d %H:%M:%S} UTC" if since else ""
        super().__init__(f"{name} is held by {holder or 'another process'}{when}")
        self.holder = holder


def lock_acquire(name: str, *, holder: str, stale_after: timedelta) -> bool:
    """Take the lock for ``holder``; False when another live holder has it."""
    try:
        with transaction.atomic():
            NamedLock.objects.get_or_create(name=name)
    except IntegrityError:
        pass  # another process created the row a moment ago
    now = timezone.now()
    free = Q(holder="") | Q(acquired_at__lt=now - stale_after)
    return NamedLock.objects.filter(free, name=name).update(holder=holder, acquired_at=now) == 1


def lock_release(name: str, *, holder: str) -> None:
    NamedLock.objects.filter(name=name, holder=holder).update(holder="", acquired_at=None)


@contextmanager
def named_lock(name: str, *, stale_after: timedelta) -> Iterator[str]:
    """Hold the lock for the block, or raise ``LockHeld`` at once if someone else does."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not lock_acquire(name, holder=holder, stale_after=stale_after):
        current = NamedLock.objects.filter(name=name).values_list("holder", "acquired_at").first()
        raise LockHeld(name, *(current or ("", None)))
    try:
        yield holder
    finally:
        lock_release(name, holder=holder)
