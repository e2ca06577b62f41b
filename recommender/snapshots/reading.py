"""Reading a snapshot back: checked against its recorded hash, then as columns for training."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from recommender.learning.splitting import Interactions
from recommender.models import DataSnapshot
from recommender.snapshots import files
from recommender.snapshots.files import SnapshotData, SnapshotError


def snapshot_load(snapshot: DataSnapshot) -> SnapshotData:
    """Read a snapshot's files, after checking they still hash to what was recorded."""
    directory = snapshot.directory
    actual = files.hash_files(directory)
    if actual != snapshot.content_hash:
        raise SnapshotError(f"snapshot files in {directory} changed since they were recorded (hash {actual[:16]})")
    return _read(directory)


def _rows(path: Path) -> Iterable[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def snapshot_ratings(snapshot: DataSnapshot) -> Iterator[tuple[int, str, int, int]]:
    """(viewer, movie, score, epoch seconds) of each current rating in the snapshot."""
    for r in _rows(snapshot.directory / "ratings.csv"):
        yield int(r["viewer_id"]), r["movie"], int(r["score"]), int(r["rated_at"])


def _read(directory: Path) -> SnapshotData:
    """Read the files into typed columns, a run of rows at a time, with no object per row."""
    files.check_columns(directory)
    movies = {
        r["movie"]: (
            r["title"],
            int(r["year"]) if r["year"] else None,
            [genre for genre in r["genres"].split("|") if genre],
            int(r["runtime_minutes"]) if r["runtime_minutes"] else None,
        )
        for r in _rows(directory / "movies.csv")
    }
    catalogue = sorted(movies)
    column = {movie: i for i, movie in enumerate(catalogue)}
    viewer_ids, movie_columns, scores, minutes = [], [], [], []
    for viewer, movie, watched, _, score, _ in files.column_runs(directory / "interactions.csv", 6):
        try:
            movie_columns.append(np.array([column[slug] for slug in movie], dtype=np.int32))
        except KeyError as error:
            raise SnapshotError(
                f"{directory / 'interactions.csv'}: movie {error.args[0]!r} is not in movies.csv"
            ) from None
        viewer_ids.append(files.integers(viewer))
        text = np.array(score)
        scores.append(np.where(text == "", "nan", text).astype(np.float32))  # "" is an interaction without a rating
        minutes.append(files.integers(watched).astype(np.int32))
    viewers = {
        int(r["viewer_id"]): (int(r["age"]) if r["age"] else None, r["gender"], r["occupation"])
        for r in _rows(directory / "viewers.csv")
    }
    interactions = Interactions(
        viewers=_joined(viewer_ids, np.int64),
        movies=_joined(movie_columns, np.int32),
        scores=_joined(scores, np.float32),
        catalogue=catalogue,
    )
    return SnapshotData(interactions=interactions, minutes=_joined(minutes, np.int32), viewers=viewers, movies=movies)


def _joined(parts: list[np.ndarray], dtype: type[np.generic]) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)
