"""Data snapshots: taking one (written, hashed, versioned with DVC), checking its quality, reading it back."""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import shutil
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from catalog.models import Movie, Rating, Viewer, Watch
from recommender.dvc import dvc_track
from recommender.learning.splitting import Interactions
from recommender.models import DataSnapshot

logger = logging.getLogger(__name__)

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


# --- Taking a snapshot ---------------------------------------------------------------------


def snapshot_create(*, track: bool = True) -> DataSnapshot:
    """Export the current training data, check its quality, version it with DVC.

    1. Write the four CSV files, sorted, into a staging directory and hash them.
    2. If a snapshot with that hash exists, it is this snapshot: return it.
    3. Otherwise move the files under ``snapshots/<hash>/``, run the quality check, record the
       snapshot (failed ones too, with their reasons), and ``dvc add`` + ``dvc push`` it.
    """
    root = Path(settings.DATA_DIR) / "snapshots"
    staging = root / f".staging-{timezone.now():%Y%m%d%H%M%S%f}"
    staging.mkdir(parents=True)
    try:
        figures = _write_files(staging)
        content_hash = _hash_files(staging)
        existing = DataSnapshot.objects.filter(content_hash=content_hash).first()
        if existing is not None:
            logger.info("data unchanged: reusing %s", existing)
            return existing
        final = root / content_hash[:16]
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

    quality, reasons = snapshot_check_quality(directory=final)
    snapshot = DataSnapshot(
        created_at=timezone.now(),
        status=DataSnapshot.Status.FAILED if reasons else DataSnapshot.Status.OK,
        failure_reasons=reasons,
        quality=quality,
        path=str(final.relative_to(settings.DATA_DIR)),
        content_hash=content_hash,
        **figures,
    )
    if track:
        record = dvc_track(path=final, repo=Path(settings.DATA_DIR))
        snapshot.dvc_md5, snapshot.dvc_file, snapshot.dvc_remote = record.md5, record.dvc_file, record.remote
    try:
        snapshot.save()
    except IntegrityError:
        # Another process took the same snapshot a moment ago.
        return DataSnapshot.objects.get(content_hash=content_hash)
    logger.info("snapshot %s: %s", snapshot, snapshot.status)
    return snapshot


def _write_files(directory: Path) -> dict[str, object]:
    """Write the four files as a stream, one viewer at a time: memory stays flat however many
    ratings there are. Rows are sorted by viewer, then movie slug (sorted in Python: databases
    order strings by their collation, not by code point)."""
    slugs = dict(Movie.objects.values_list("id", "slug"))
    viewer_ids: set[int] = set()
    movie_ids: set[int] = set()
    ratings_count = interactions_count = 0
    first: datetime | None = None
    last: datetime | None = None
    with (
        _csv_writer(directory / "ratings.csv", RATING_COLUMNS) as ratings,
        _csv_writer(directory / "interactions.csv", INTERACTION_COLUMNS) as interactions,
    ):
        chunks = list(_viewer_chunks())  # one pass over the viewer ids serves both streams
        for viewer_id, current, watches in _by_viewer(_latest_ratings(chunks), _watches(chunks)):
            viewer_ids.add(viewer_id)
            for movie_id in sorted(current.keys() | watches.keys(), key=slugs.__getitem__):
                movie_ids.add(movie_id)
                score, rated_at = current.get(movie_id, ("", None))
                minutes, max_minute, seen_at = watches.get(movie_id, (0, 0, None))
                at = max(moment for moment in (rated_at, seen_at) if moment is not None)
                first = at if first is None or at < first else first
                last = at if last is None or at > last else last
                if rated_at is not None:
                    ratings.writerow((viewer_id, slugs[movie_id], score, int(rated_at.timestamp())))
                    ratings_count += 1
                interactions.writerow((viewer_id, slugs[movie_id], minutes, max_minute, score, int(at.timestamp())))
                interactions_count += 1

    with _csv_writer(directory / "viewers.csv", VIEWER_COLUMNS) as viewers:
        for viewer in Viewer.objects.order_by("id").iterator(chunk_size=20_000):
            if viewer.id in viewer_ids:
                age = "" if viewer.age is None else viewer.age
                viewers.writerow((viewer.id, age, viewer.gender, viewer.occupation))
    movies = sorted(
        (m.slug, m.title, "" if m.year is None else m.year, "|".join(m.genres), m.runtime_minutes or "")
        for m in Movie.objects.iterator(chunk_size=20_000)
        if m.id in movie_ids
    )
    with _csv_writer(directory / "movies.csv", MOVIE_COLUMNS) as writer:
        writer.writerows(movies)
    return {
        "rating_rows": ratings_count,
        "interaction_rows": interactions_count,
        "viewer_count": len(viewer_ids),
        "movie_count": len(movie_ids),
        "window_start": first,
        "window_end": last,
    }


VIEWER_CHUNK = 20_000


def _viewer_chunks() -> Iterator[tuple[int, int]]:
    """(first, last) viewer ids of consecutive chunks of viewers. Reading by chunks keeps the
    database client's memory flat too (mysqlclient holds a whole result set)."""
    last = -1
    while True:
        ids = list(Viewer.objects.filter(id__gt=last).order_by("id").values_list("id", flat=True)[:VIEWER_CHUNK])
        if not ids:
            return
        yield ids[0], ids[-1]
        last = ids[-1]


def _latest_ratings(chunks: list[tuple[int, int]]) -> Iterator[tuple[int, int, int, datetime]]:
    """(viewer, movie, score, rated at) of each pair's latest rating, by viewer then movie id."""
    previous: tuple[int, int, int, datetime] | None = None
    for first, last in chunks:
        rows = (
            Rating.objects.filter(viewer_id__gte=first, viewer_id__lte=last)
            .order_by("viewer_id", "movie_id", "rated_at", "id")
            .values_list("viewer_id", "movie_id", "score", "rated_at")
        )
        for row in rows.iterator(chunk_size=20_000):
            if previous is not None and previous[:2] != row[:2]:
                yield previous
            previous = row
    if previous is not None:
        yield previous


def _watches(chunks: list[tuple[int, int]]) -> Iterator[tuple[int, int, int, int, datetime]]:
    for first, last in chunks:
        yield from (
            Watch.objects.filter(viewer_id__gte=first, viewer_id__lte=last)
            .order_by("viewer_id", "movie_id")
            .values_list("viewer_id", "movie_id", "minutes_watched", "max_minute", "last_seen_at")
            .iterator(chunk_size=20_000)
        )


def _by_viewer(
    ratings: Iterator[tuple[int, int, int, datetime]], watches: Iterator[tuple[int, int, int, int, datetime]]
) -> Iterator[tuple[int, dict[int, tuple[int, datetime]], dict[int, tuple[int, int, datetime]]]]:
    """Merge the two streams (both ordered by viewer) into one group per viewer."""
    rating = next(ratings, None)
    watch = next(watches, None)
    while rating is not None or watch is not None:
        viewer = min(row[0] for row in (rating, watch) if row is not None)
        current: dict[int, tuple[int, datetime]] = {}
        while rating is not None and rating[0] == viewer:
            current[rating[1]] = (rating[2], rating[3])
            rating = next(ratings, None)
        watched: dict[int, tuple[int, int, datetime]] = {}
        while watch is not None and watch[0] == viewer:
            watched[watch[1]] = (watch[2], watch[3], watch[4])
            watch = next(watches, None)
        yield viewer, current, watched


@contextmanager
def _csv_writer(path: Path, columns: list[str]) -> Iterator[Any]:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        yield writer


def _hash_files(directory: Path) -> str:
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


# --- Checking one --------------------------------------------------------------------------


def snapshot_check_quality(*, directory: Path) -> tuple[dict[str, object], list[str]]:
    """The data-quality gate before training: figures, and the reasons it fails (if any).

    It reads the files row by row: the check costs no memory per rating."""
    reasons: list[str] = []
    quality: dict[str, object] = {}
    try:
        _check_columns(directory)
        count = out_of_range = duplicates = total = 0
        previous: tuple[str, str] | None = None
        for viewer, movie, text, _ in _tuples(directory / "ratings.csv", 4):
            score, pair = int(text), (viewer, movie)
            count, total = count + 1, total + score
            out_of_range += not 1 <= score <= 5
            duplicates += pair == previous  # the file is sorted: a repeated pair is adjacent
            previous = pair
        viewers: set[int] = set()
        interactions = 0
        for row in _tuples(directory / "interactions.csv", 6):
            viewers.add(int(row[0]))
            interactions += 1
    except (SnapshotError, ValueError, KeyError, TypeError) as error:
        return {"schema": "invalid"}, [f"schema: {error}"]
    quality.update(
        schema="ok",
        ratings=count,
        interactions=interactions,
        out_of_range=out_of_range,
        duplicate_pairs=duplicates,
        mean_score=round(total / count, 4) if count else None,
    )
    if out_of_range:
        reasons.append(f"{out_of_range} ratings outside 1-5")
    if duplicates:
        reasons.append(f"{duplicates} duplicate (viewer, movie) ratings")
    if count < settings.SNAPSHOT_MIN_RATINGS:
        reasons.append(f"{count} ratings, fewer than the minimum of {settings.SNAPSHOT_MIN_RATINGS}")

    previous_snapshot = DataSnapshot.objects.filter(status=DataSnapshot.Status.OK).order_by("-created_at").first()
    if previous_snapshot is not None and previous_snapshot.directory.is_dir():
        known = {int(row["viewer_id"]) for row in _rows(previous_snapshot.directory / "viewers.csv")}
        new_share = len(viewers - known) / len(viewers) if viewers else 0.0
        quality.update(previous_snapshot=previous_snapshot.content_hash[:16], new_viewer_share=round(new_share, 4))
        if new_share > settings.SNAPSHOT_MAX_NEW_VIEWER_SHARE:
            reasons.append(
                f"{new_share:.0%} of viewers are new since the previous snapshot "
                f"(more than {settings.SNAPSHOT_MAX_NEW_VIEWER_SHARE:.0%}): a remapped id or a broken feed?"
            )
    return quality, reasons


# --- Reading one back ----------------------------------------------------------------------


def snapshot_load(snapshot: DataSnapshot) -> SnapshotData:
    """Read a snapshot's files, after checking they still hash to what was recorded."""
    directory = snapshot.directory
    actual = _hash_files(directory)
    if actual != snapshot.content_hash:
        raise SnapshotError(f"snapshot files in {directory} changed since they were recorded (hash {actual[:16]})")
    return _read(directory)


def _tuples(path: Path, width: int) -> Iterator[list[str]]:
    """A snapshot file's rows as lists (a dict per row cost more than the check itself)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for row in reader:
            if len(row) != width:
                raise SnapshotError(f"{path}, line {reader.line_num}: {len(row)} fields, expected {width}")
            yield row


def _rows(path: Path) -> Iterable[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def snapshot_ratings(snapshot: DataSnapshot) -> Iterator[tuple[int, str, int, int]]:
    """(viewer, movie, score, epoch seconds) of each current rating in the snapshot."""
    for r in _rows(snapshot.directory / "ratings.csv"):
        yield int(r["viewer_id"]), r["movie"], int(r["score"]), int(r["rated_at"])


def _check_columns(directory: Path) -> None:
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


def _read(directory: Path) -> SnapshotData:
    """Read the files into columns: typed arrays grow as the rows come, with no object per row."""
    _check_columns(directory)
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
    viewer_ids, movie_columns, scores, minutes = array("q"), array("i"), array("f"), array("i")
    with (directory / "interactions.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        for viewer, movie, watched, _, score, _ in reader:
            if movie not in column:
                raise SnapshotError(f"{directory / 'interactions.csv'}: movie {movie!r} is not in movies.csv")
            viewer_ids.append(int(viewer))
            movie_columns.append(column[movie])
            scores.append(float(score) if score else math.nan)
            minutes.append(int(watched))
    viewers = {
        int(r["viewer_id"]): (int(r["age"]) if r["age"] else None, r["gender"], r["occupation"])
        for r in _rows(directory / "viewers.csv")
    }
    interactions = Interactions(
        viewers=np.frombuffer(viewer_ids, dtype=np.int64),
        movies=np.frombuffer(movie_columns, dtype=np.int32),
        scores=np.frombuffer(scores, dtype=np.float32),
        catalogue=catalogue,
    )
    return SnapshotData(
        interactions=interactions, minutes=np.frombuffer(minutes, dtype=np.int32), viewers=viewers, movies=movies
    )
