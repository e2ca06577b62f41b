"""Progress bars for long commands: shown on a terminal, silent in logs and pipes."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(*, total: int | None, description: str, unit: str = "it", unit_scale: bool = True) -> tqdm:
    # disable=None turns the bar off when stderr is not a terminal (CI, log files, pipes).
    return tqdm(
        total=total, desc=description, unit=unit, unit_scale=unit_scale, file=sys.stderr, disable=None, leave=False
    )
