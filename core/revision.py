"""The revision of the running code, recorded with every model version it trains."""

from __future__ import annotations

import subprocess

from django.conf import settings


def code_revision() -> str:
    """The git commit of the running code (``+dirty`` when it has uncommitted changes), or
    ``CODE_REVISION`` where there is no git checkout (a container image)."""
    if settings.CODE_REVISION:
        return str(settings.CODE_REVISION)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{commit}+dirty" if dirty else commit
