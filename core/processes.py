"""Telling a live process from a dead one by its pid, on this host, when pids are reused.

A pid alone does not name a process for long: a container's processes start from the same few
pids after every restart, so the gunicorn worker that wrote a file as pid 9 and the one running
as pid 9 now are usually different processes. A pid together with the process's start time
(in clock ticks since the machine booted, from ``/proc/<pid>/stat``) names one process for good.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) is parenthesised and may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_started_at(pid: int) -> datetime | None:
    ticks = process_start_ticks(pid)
    if ticks is None:
        return None
    try:
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    return datetime.fromtimestamp(int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK"), tz=UTC)


def process_is_alive(pid: int, *, start_ticks: int) -> bool:
    """Whether the process that was ``pid`` when it started at ``start_ticks`` still runs."""
    return process_start_ticks(pid) == start_ticks
