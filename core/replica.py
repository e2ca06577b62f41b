"""Reads from a MariaDB read replica where they may be a few seconds old, and nowhere else.

``DATABASE_REPLICA_URL`` configures the ``replica`` database. Nothing reads from it unless it
runs inside :func:`replica_reads`: the console's pages (:class:`ReplicaReadsMiddleware`), the
snapshot export and the fairness and feedback jobs. Those are reads over many rows that may lag
the primary by seconds, and they are the reads that would compete with ingestion and the
request path for the primary. Everything else stays on the primary: writes, reads inside a
transaction (they must see what it wrote), the request path, logins and sessions (a session
written on the primary a moment ago must be found), and the task queue.

Whether the replica may be used is checked on the replica itself (``SHOW REPLICA STATUS``), at
most every ``DATABASE_REPLICA_CHECK_SECONDS`` in each process: a replica that does not answer,
whose replication is not running, or that is more than ``DATABASE_REPLICA_MAX_LAG_SECONDS``
behind sends those reads back to the primary, and the console shows why (``replica_context``).
A replica that goes away between two checks fails the reads made in that window; the next check
sends them to the primary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Gauge

logger = logging.getLogger(__name__)

REPLICA = "replica"
# Apps whose rows are read right after they are written, or that are the task queue's own.
PRIMARY_ONLY_APPS = frozenset({"auth", "sessions", "admin", "contenttypes", "axes", "django_q"})
# Set on a console answer to a change: that browser reads from the primary for the lag bound, so
# the page after the change shows it.
PRIMARY_COOKIE = "recsite_read_primary"

USABLE = Gauge(
    "recsite_database_replica_usable",
    "1 when the read replica answers, replicates and is within its lag bound (the last check)",
    multiprocess_mode="livemin",
)
LAG = Gauge(
    "recsite_database_replica_lag_seconds",
    "How far the read replica was behind the primary at the last check (NaN when unknown)",
    multiprocess_mode="livemax",
)
FALLBACKS = Counter(
    "recsite_database_replica_fallbacks_total",
    "Reads meant for the replica that went to the primary, by why",
    ["reason"],
)

_reading_from_replica: ContextVar[bool] = ContextVar("reading_from_replica", default=False)


@dataclass(frozen=True)
class ReplicaStatus:
    """One check of the replica. ``reason`` is why it is not used: ``unreachable``,
    ``not_replicating`` or ``lagging`` (empty when it is used, or when none is configured)."""

    configured: bool
    usable: bool
    lag_seconds: float | None = None
    reason: str = ""
    detail: str = ""

    @property
    def summary(self) -> str:
        if not self.configured:
            return "no replica configured: every read is on the primary"
        if self.usable:
            return f"reads from the replica ({self.lag_seconds:g} s behind the primary)"
        return f"the replica {self.detail}: its reads are on the primary"


def replica_configured() -> bool:
    return REPLICA in connections.settings


_lock = threading.Lock()
_last: tuple[float, ReplicaStatus] | None = None


def replica_status(*, fresh: bool = False) -> ReplicaStatus:
    """The replica's state, checked again when the last check is older than
    ``DATABASE_REPLICA_CHECK_SECONDS`` (or ``fresh``)."""
    global _last
    if not replica_configured():
        return ReplicaStatus(configured=False, usable=False)
    with _lock:
        now = time.monotonic()
        if fresh or _last is None or now - _last[0] >= settings.DATABASE_REPLICA_CHECK_SECONDS:
            _last = (now, _check())
        return _last[1]


def _check() -> ReplicaStatus:
    bound = settings.DATABASE_REPLICA_MAX_LAG_SECONDS
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute("SHOW REPLICA STATUS")
            row = cursor.fetchone()
            names = [column[0] for column in cursor.description or ()]
    except DatabaseError as error:
        # The error names hosts and users: it goes to the log, the console says what it means.
        logger.warning("the read replica did not answer: %s", error)
        connections[REPLICA].close()
        status = ReplicaStatus(configured=True, usable=False, reason="unreachable", detail="does not answer")
    else:
        state: dict[str, Any] = dict(zip(names, row, strict=True)) if row else {}
        lag = state.get("Seconds_Behind_Master")
        lag = None if lag is None else float(lag)
        if not state:
            status = ReplicaStatus(True, False, None, "not_replicating", "is not set up to replicate")
        elif state.get("Slave_SQL_Running") != "Yes" or state.get("Slave_IO_Running") != "Yes":
            why = state.get("Last_SQL_Error") or state.get("Last_IO_Error") or "stopped"
            status = ReplicaStatus(True, False, lag, "not_replicating", f"does not replicate ({why})")
        elif lag is None or lag > bound:
            status = ReplicaStatus(True, False, lag, "lagging", f"is {lag:g} s behind (bound {bound:g} s)")
        else:
            status = ReplicaStatus(True, True, lag)
    USABLE.set(1 if status.usable else 0)
    LAG.set(float("nan") if status.lag_seconds is None else status.lag_seconds)
    return status


@contextmanager
def replica_reads() -> Iterator[ReplicaStatus]:
    """Reads inside go to the replica when it may be used (see the module's docstring); yields
    the status that decided it. Also a decorator, for a job that reads many rows that may be
    seconds old: its writes, and the reads in its transactions, stay on the primary."""
    status = replica_status()
    if status.configured and not status.usable:
        FALLBACKS.labels(status.reason).inc()
    token = _reading_from_replica.set(status.usable)
    try:
        yield status
    finally:
        _reading_from_replica.reset(token)


@contextmanager
def primary_reads() -> Iterator[None]:
    """Reads inside go to the primary, even within ``replica_reads``."""
    token = _reading_from_replica.set(False)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


class ReplicaRouter:
    """Django's database router: the replica for reads inside ``replica_reads`` only."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        if not _reading_from_replica.get() or model._meta.app_label in PRIMARY_ONLY_APPS:
            return None
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return None
        return REPLICA

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return None

    def allow_relation(self, first: Model, second: Model, **hints: Any) -> bool | None:
        # The same rows on either side: a movie read from the replica may be saved on a new
        # row of the primary.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return db != REPLICA


class ReplicaReadsMiddleware:
    """The console's pages read from the replica; its changes, and the pages that browser asks
    for within the lag bound after one, from the primary."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._console: str | None = None  # the admin's prefix, resolved once the URLs are loaded

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._console is None:
            from django.urls import reverse

            self._console = reverse("admin:index")
        if not replica_configured() or not request.path.startswith(self._console):
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = self.get_response(request)
            response.set_cookie(
                PRIMARY_COOKIE,
                "1",
                max_age=max(1, round(settings.DATABASE_REPLICA_MAX_LAG_SECONDS)),
                httponly=True,
                samesite="Lax",
            )
            return response
        if request.COOKIES.get(PRIMARY_COOKIE):
            return self.get_response(request)
        with replica_reads():
            return self.get_response(request)


def replica_context(request: HttpRequest) -> dict[str, ReplicaStatus]:
    """The console's templates: ``replica`` (its status) when one is configured."""
    return {"replica": replica_status()} if replica_configured() else {}
