"""What a snapshot is on disk: its four CSV files and their columns, their hash, and reading
them back as runs of columns (shared by the quality check and by loading)."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recommender.learning.splitting import Interactions

SNAPSHOT_FILES = ("ratings.csv", "interactions.csv", "viewers.csv", "movies.csv")


RATING_COLUMNS = ["viewer_id", "movie", "score", "rated_at"]


INTERACTION_COLUMNS = ["viewer_id", "movie", "minutes_watched", "max_minute", "score", "last_at"]


VIEWER_COLUMNS = ["viewer_id", "age", "gender", "occupation"]


MOVIE_COLUMNS = ["movie", "title", "year", "genres", "runtime_minutes"]


class SnapshotError(Exception):
    """A snapshot whose files are missing or do not match their recorded hash."""


@dataclass
class SnapshotData:
    """A snapshot read back from its files: what training needs, as columns.

    ``interactions`` holds one entry per (viewer, movie) with the current score; ``minutes``
    the minutes watched of each, in the same order. Ratings history stays in ``ratings.csv``
    (``snapshot_ratings`` reads it row by row): training needs only the current scores."""

    interactions: Interactions
    minutes: np.ndarray  # int32, minutes watched per interaction
    viewers: dict[int, tuple[int | None, str, str]]  # viewer -> age, gender, occupation
    movies: dict[str, tuple[str, int | None, list[str], int | None]] = field(default_factory=dict)


def hash_files(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in SNAPSHOT_FILES:
        path = directory / name
        if not path.is_file():
            raise SnapshotError(f"snapshot file {path} is missing")
        digest.update(name.encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def check_columns(directory: Path) -> None:
    for name, columns in zip(
        SNAPSHOT_FILES, (RATING_COLUMNS, INTERACTION_COLUMNS, VIEWER_COLUMNS, MOVIE_COLUMNS), strict=True
    ):
        path = directory / name
        if not path.is_file():
            raise SnapshotError(f"snapshot file {path} is missing")
        with path.open(encoding="utf-8") as handle:
            header = handle.readline().strip().split(",")
        if header != columns:
            raise SnapshotError(f"{path}: columns {header} are not {columns}")


def column_runs(path: Path, width: int, run_bytes: int = 4 << 20) -> Iterator[list[list[str]]]:
    """A snapshot file's rows in runs of about ``run_bytes``, each run as columns of text: numpy
    converts a column at once, where a Python step per row cost more than the reading.

    A run without quotes (the ratings and interactions always: slugs hold no commas) is split
    in one step; one with quotes goes through the csv module."""
    with path.open(newline="", encoding="utf-8") as handle:
        handle.readline()
        line = 2
        while lines := handle.readlines(run_bytes):
            text = "".join(lines)
            if '"' in text or "\r" in text:
                rows = list(csv.reader(lines))
            else:
                fields = text.replace("\n", ",").split(",")
                if len(fields) == width * len(lines) + 1 and text.endswith("\n"):
                    yield [fields[i:-1:width] for i in range(width)]
                    line += len(lines)
                    continue
                rows = [entry.rstrip("\n").split(",") for entry in lines]
            for offset, row in enumerate(rows):
                if len(row) != width:
                    raise SnapshotError(f"{path}, line {line + offset}: {len(row)} fields, expected {width}")
            yield [list(column) for column in zip(*rows, strict=True)]
            line += len(lines)


def integers(column: list[str]) -> np.ndarray:
    """A column of whole numbers; ``ValueError`` names a value that is not one."""
    return np.array(column).astype(np.int64)
