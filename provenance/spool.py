"""A write-ahead spool for provenance rows: a per-process append-only file on local disk.

Every answer's row is appended here before the answer leaves the worker: one ``write()`` of one
JSON line to a file opened with ``O_APPEND``. The kernel keeps what was written when the process
is killed (SIGKILL, the out-of-memory killer), so a row is lost only if the machine itself goes
down within the few seconds before the page cache reaches the disk; no fsync per request.

The recorder seals the active file when it starts writing its queue to the database and
deletes sealed files once the queue has been written, so the spool holds a few seconds of rows.
When the queue dropped rows from memory (an outage longer than it holds), the sealed files are
not deleted but handed to recovery, which reads them back from disk.

Recovery (``spool_recover``) inserts the rows of files whose writer is gone, ignoring duplicates
(the request id is unique, so a row that also reached the database before the kill is not
doubled), then deletes the files. Every worker's writer thread runs it every
``PROVENANCE_RECOVER_SECONDS`` and a starting worker runs it at once, so spooled rows reach the
database once it is back, whoever wrote them, without waiting for a restart.

Layout: ``VAR_DIR/provenance-spool/<host>/<owner>-<token>.active.jsonl`` and
``<owner>-<token>.<n>.sealed.jsonl`` (the token tells two spools of one process apart); a file
being recovered is renamed ``claimed-<claimer>-<name>`` first, so two workers never drain one
file twice. A claimed file whose insert failed stays with its live claimer, which retries it;
one whose claimer died is claimed again by the next. ``<owner>`` is ``<pid>.<start>``, the
process's pid and start time (``core.processes``): a container's restarted workers get the same
pids as the killed ones, and a pid alone would make a dead writer's file look like a live one's
for ever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings

from core.processes import process_is_alive, process_start_ticks
from provenance.models import Recommendation
from provenance.rollup import recommendations_insert

logger = logging.getLogger(__name__)

_FIELDS = (
    "request_id",
    "caller_request_id",
    "viewer_id",
    "model_version_id",
    "pool",
    "strategy",
    "degraded",
    "items",
    "explored",
    "status",
    "latency_ms",
    "host",
)
# Files from before owners carried their start time name a bare pid.
_OWNER = re.compile(r"^(?:claimed-(?P<claimer>\d+(?:\.\d+)?)-)?(?P<writer>\d+(?:\.\d+)?)-")
_CLAIM = re.compile(r"^claimed-\d+(?:\.\d+)?-")


def spool_directory() -> Path:
    return Path(settings.VAR_DIR) / "provenance-spool" / socket.gethostname()


def row_to_line(row: Recommendation) -> bytes:
    values = {field: getattr(row, field) for field in _FIELDS}
    values["served_at"] = row.served_at.isoformat()
    return (json.dumps(values, separators=(",", ":")) + "\n").encode()


def line_to_row(line: bytes) -> Recommendation:
    values = json.loads(line)
    values["served_at"] = datetime.fromisoformat(values["served_at"])
    # A spool written before the flag was a column carries it as the strategy's suffix.
    if values["strategy"].endswith("-degraded"):
        values["strategy"], values["degraded"] = values["strategy"].removesuffix("-degraded"), True
    return Recommendation(**values)


class Spool:
    """This process's spool file. Not thread-safe: the recorder calls it under its own lock."""

    def __init__(self) -> None:
        self._descriptor: int | None = None
        self._pid = 0
        self._token = ""
        self._sealed = 0
        self.sealed_files: list[Path] = []
        # Rows dropped from memory since the last seal, and whether a sealed file holds some.
        self._dropped = False
        self._sealed_hold_dropped = False

    def append(self, line: bytes) -> None:
        """Append one line made by ``row_to_line`` (made before the caller takes its lock)."""
        if self._descriptor is None or self._pid != os.getpid():
            self._open()
        assert self._descriptor is not None
        os.write(self._descriptor, line)

    def dropped(self) -> None:
        """The queue let go of rows it had spooled: only this file has them now."""
        self._dropped = True

    def seal(self) -> None:
        """Close the active file under a sealed name: rows appended from now on go to a new one."""
        if self._descriptor is None or self._pid != os.getpid():
            return
        self._sealed_hold_dropped |= self._dropped
        self._dropped = False
        os.close(self._descriptor)
        self._descriptor = None
        self._sealed += 1
        sealed = self._active_path().with_name(f"{process_owner()}-{self._token}.{self._sealed}.sealed.jsonl")
        os.replace(self._active_path(), sealed)
        self.sealed_files.append(sealed)

    def release(self) -> None:
        """Delete the sealed files, whose rows are all in the database; or, when the queue
        dropped some of their rows, hand them to this process's recovery, which reads them back."""
        for path in self.sealed_files:
            if self._sealed_hold_dropped:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, path.with_name(f"claimed-{process_owner()}-{path.name}"))
            else:
                path.unlink(missing_ok=True)
        self.sealed_files.clear()
        self._sealed_hold_dropped = False

    def discard(self) -> None:
        """Seal and delete everything (a test that starts from an empty queue)."""
        self.seal()
        self._sealed_hold_dropped = False
        self.release()

    def _open(self) -> None:
        if self._pid != os.getpid():
            self.sealed_files = []  # a forked child does not own its parent's files
            self._sealed = 0
            self._dropped = self._sealed_hold_dropped = False
        self._pid, self._token = os.getpid(), uuid.uuid4().hex[:8]
        directory = spool_directory()
        directory.mkdir(parents=True, exist_ok=True)
        self._descriptor = os.open(self._active_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _active_path(self) -> Path:
        return spool_directory() / f"{process_owner()}-{self._token}.active.jsonl"


def spool_files_of_dead_processes() -> Iterator[Path]:
    """Spool files on this host whose writer (or claimer) is no longer alive."""
    directory = spool_directory()
    if not directory.is_dir():
        return
    me = process_owner()
    for path in sorted(directory.glob("*.jsonl")):
        match = _OWNER.match(path.name)
        if match is None:
            continue
        owner = match["claimer"] or match["writer"]
        if owner != me and _alive(owner):
            continue
        if owner == me and not match["claimer"]:
            continue  # this process's own spool: the recorder writes it
        yield path


def spool_recover(*, batch_size: int = 1000) -> int:
    """Insert the rows of dead processes' spool files, then delete the files; returns the rows
    read. A file is claimed (renamed) first, so two workers at once share the work; a database
    error leaves the rest claimed by this process, which tries again on its next call."""
    recovered = 0
    me = process_owner()
    for path in spool_files_of_dead_processes():
        if path.name.startswith(f"claimed-{me}-"):
            claimed = path  # this process's own claim, whose insert failed before: retried
        else:  # a dead claimer's name is dropped: one claim prefix at most
            claimed = path.with_name(f"claimed-{me}-{_CLAIM.sub('', path.name)}")
        try:
            os.replace(path, claimed) if claimed != path else None
        except FileNotFoundError:
            continue  # another worker claimed it a moment ago
        rows = [line_to_row(line) for line in claimed.read_bytes().splitlines() if line.strip()]
        recommendations_insert(rows, batch_size=batch_size)
        claimed.unlink()
        recovered += len(rows)
        logger.info("recovered %d provenance rows from %s", len(rows), path.name)
    return recovered


_owners: dict[int, str] = {}


def process_owner() -> str:
    """This process as spool files name it: ``<pid>.<start ticks>``."""
    pid = os.getpid()
    if pid not in _owners:
        _owners[pid] = f"{pid}.{process_start_ticks(pid)}"
    return _owners[pid]


def _alive(owner: str) -> bool:
    pid, _, ticks = owner.partition(".")
    if ticks:
        return process_is_alive(int(pid), start_ticks=int(ticks))
    return _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
