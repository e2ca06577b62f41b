"""Versioning files with DVC (the real ``dvc`` command, run from this virtualenv).

Each tracked directory tree (``DATA_DIR``, ``MODEL_DIR``) is its own DVC repository without git
(``dvc init --no-scm``), pushing to one content-addressed remote (``DVC_REMOTE``). DVC takes a
repository-wide lock and is slow to start, so it is only ever called from commands and
django-q2 tasks, never a web request; a file lock here also serialises recsite's own callers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


class DvcError(Exception):
    """A DVC command that failed, with what DVC said."""


@dataclass(frozen=True)
class DvcRecord:
    md5: str
    dvc_file: str
    remote: str


@contextmanager
def _repo_lock(repo: Path) -> Iterator[None]:
    repo.mkdir(parents=True, exist_ok=True)
    with (repo / ".recsite-dvc.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _dvc(repo: Path, *args: str) -> str:
    command = [sys.executable, "-m", "dvc", *args]
    # Analytics would try to reach the internet from every call.
    environment = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(
        command, cwd=repo, env=environment, capture_output=True, text=True, timeout=settings.DVC_TIMEOUT, check=False
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise DvcError(f"dvc {' '.join(args)} failed in {repo}: {message[-1] if message else result.returncode}")
    return result.stdout


def _ensure_repo(repo: Path) -> None:
    if not (repo / ".dvc").is_dir():
        _dvc(repo, "init", "--no-scm", "--quiet")
    remote = settings.DVC_REMOTE
    # Reading DVC's INI config saves two slow CLI calls on every run once the remote is set.
    config = (repo / ".dvc" / "config").read_text() if (repo / ".dvc" / "config").is_file() else ""
    if f"url = {remote}\n" not in config + "\n":
        _dvc(repo, "remote", "add", "--default", "--force", "recsite", remote)


def dvc_track(*, path: Path, repo: Path) -> DvcRecord:
    """``dvc add`` then ``dvc push`` one file or directory inside ``repo``; returns DVC's record."""
    path = path.resolve()
    repo = repo.resolve()
    if repo not in path.parents:
        raise DvcError(f"{path} is not inside the DVC repository {repo}")
    relative = path.relative_to(repo)
    with _repo_lock(repo):
        _ensure_repo(repo)
        _dvc(repo, "add", "--quiet", str(relative))
        _dvc(repo, "push", "--quiet", str(relative))
    dvc_file = path.with_name(path.name + ".dvc")
    md5 = _read_md5(dvc_file)
    logger.info("dvc tracked %s (md5 %s) and pushed to %s", relative, md5, settings.DVC_REMOTE)
    return DvcRecord(md5=md5, dvc_file=str(dvc_file.relative_to(repo)), remote=settings.DVC_REMOTE)


def _read_md5(dvc_file: Path) -> str:
    # A .dvc file is small YAML: "outs:\n- md5: <hash>\n  ...". Reading the one line we need
    # avoids depending on DVC's internal Python API.
    for line in dvc_file.read_text().splitlines():
        key, _, value = line.strip().lstrip("- ").partition(":")
        if key == "md5":
            return value.strip()
    raise DvcError(f"{dvc_file} has no md5")
