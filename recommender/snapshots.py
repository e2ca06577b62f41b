"""Data snapshots: taking one (written, hashed, versioned with DVC), checking its quality, reading it back."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from catalog.models import Movie, Rating, Viewer, Watch
from core.db import EpochSeconds, integer_columns
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
    """Write the four files as a stream, a chunk of viewers at a time: memory stays flat however
    many ratings there are. Rows are sorted by viewer, then movie slug (by code point, as Python
    sorts: databases order strings by their collation).

    Each chunk is read as integer columns and joined with numpy: a Python object per row and a
    datetime per value had cost most of the snapshot's time."""
    movie_ids, slugs = _movies_by_slug()
    rank = np.full(int(movie_ids.max(initial=0)) + 1, -1, dtype=np.int64)
    rank[movie_ids] = np.arange(len(movie_ids))
    cells = [_csv_cell(slug) for slug in slugs]
    viewer_ids: list[np.ndarray] = []
    seen_movies = np.zeros(len(slugs), dtype=bool)
    ratings_count = interactions_count = 0
    first = last = None
    with (
        (directory / "ratings.csv").open("w", encoding="utf-8") as ratings,
        (directory / "interactions.csv").open("w", encoding="utf-8") as interactions,
    ):
        ratings.write(",".join(RATING_COLUMNS) + "\n")
        interactions.write(",".join(INTERACTION_COLUMNS) + "\n")
        for low, high in _viewer_chunks():
            chunk = _chunk_interactions(low, high, rank)
            if not len(chunk.viewers):
                continue
            viewer_ids.append(np.unique(chunk.viewers))
            seen_movies[chunk.ranks] = True
            first = min(first, int(chunk.at.min())) if first is not None else int(chunk.at.min())
            last = max(last, int(chunk.at.max())) if last is not None else int(chunk.at.max())
            slug_cells = [cells[r] for r in chunk.ranks.tolist()]
            rated = chunk.scores > 0
            scores = [str(score) if score else "" for score in chunk.scores.tolist()]
            interactions.writelines(
                f"{v},{m},{w},{x},{s},{t}\n"
                for v, m, w, x, s, t in zip(
                    chunk.viewers.tolist(), slug_cells, chunk.minutes.tolist(), chunk.max_minutes.tolist(),
                    scores, chunk.at.tolist(), strict=True,
                )
            )  # fmt: skip
            ratings.writelines(
                f"{v},{m},{s},{t}\n"
                for v, m, s, t in zip(
                    chunk.viewers[rated].tolist(), [c for c, r in zip(slug_cells, rated.tolist(), strict=True) if r],
                    chunk.scores[rated].tolist(), chunk.rated_at[rated].tolist(), strict=True,
                )
            )  # fmt: skip
            ratings_count += int(rated.sum())
            interactions_count += len(chunk.viewers)

    kept = np.concatenate(viewer_ids) if viewer_ids else np.zeros(0, dtype=np.int64)
    with _csv_writer(directory / "viewers.csv", VIEWER_COLUMNS) as viewers:
        for viewer_id, age, gender, occupation in (
            Viewer.objects.order_by("id").values_list("id", "age", "gender", "occupation").iterator(chunk_size=20_000)
        ):
            if _contains(kept, viewer_id):
                viewers.writerow((viewer_id, "" if age is None else age, gender, occupation))
    chosen = set(movie_ids[seen_movies].tolist())
    movies = sorted(
        (slug, title, "" if year is None else year, "|".join(genres), runtime or "")
        for movie_id, slug, title, year, genres, runtime in Movie.objects.values_list(
            "id", "slug", "title", "year", "genres", "runtime_minutes"
        ).iterator(chunk_size=20_000)
        if movie_id in chosen
    )
    with _csv_writer(directory / "movies.csv", MOVIE_COLUMNS) as writer:
        writer.writerows(movies)
    return {
        "rating_rows": ratings_count,
        "interaction_rows": interactions_count,
        "viewer_count": len(kept),
        "movie_count": len(chosen),
        "window_start": None if first is None else datetime.fromtimestamp(first, tz=UTC),
        "window_end": None if last is None else datetime.fromtimestamp(last, tz=UTC),
    }


def _movies_by_slug() -> tuple[np.ndarray, list[str]]:
    """Every movie's id and slug, in the snapshot's order (slugs by code point)."""
    pairs = sorted(Movie.objects.values_list("slug", "id"))
    return np.array([movie_id for _, movie_id in pairs], dtype=np.int64), [slug for slug, _ in pairs]


def _csv_cell(text: str) -> str:
    """``text`` as the csv module writes one field (quoted only when it must be)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


def _contains(sorted_ids: np.ndarray, value: int) -> bool:
    at = int(np.searchsorted(sorted_ids, value))
    return at < len(sorted_ids) and int(sorted_ids[at]) == value


@dataclass
class _Chunk:
    """A chunk of viewers' interactions: one row per (viewer, movie) rated or watched, sorted by
    viewer then slug; a score of 0 means unrated, times are Unix seconds."""

    viewers: np.ndarray
    ranks: np.ndarray  # the movie's place in slug order
    scores: np.ndarray
    rated_at: np.ndarray
    minutes: np.ndarray
    max_minutes: np.ndarray
    at: np.ndarray  # the later of the rating and the last minute watched


def _chunk_interactions(low: int, high: int, rank: np.ndarray) -> _Chunk:
    ratings = integer_columns(
        Rating.objects.filter(viewer_id__gte=low, viewer_id__lte=high)
        .order_by("viewer_id", "movie_id", "rated_at", "id")
        .annotate(at=EpochSeconds("rated_at"))
        .values_list("viewer_id", "movie_id", "score", "at")
    )
    # A pair's current rating is its latest: the last row of each (viewer, movie) run.
    same_pair_next = (ratings[1:, 0] == ratings[:-1, 0]) & (ratings[1:, 1] == ratings[:-1, 1])
    ratings = ratings[np.append(~same_pair_next, True)] if len(ratings) else ratings
    watches = integer_columns(
        Watch.objects.filter(viewer_id__gte=low, viewer_id__lte=high)
        .annotate(at=EpochSeconds("last_seen_at"))
        .values_list("viewer_id", "movie_id", "minutes_watched", "max_minute", "at")
    )
    width = len(rank)
    rating_keys = ratings[:, 0] * width + rank[ratings[:, 1]]
    watch_keys = watches[:, 0] * width + rank[watches[:, 1]]
    keys = np.union1d(rating_keys, watch_keys)
    scores, rated_at = _gathered(rating_keys, keys, ratings[:, 2:4])
    minutes, max_minutes, seen_at = _gathered(watch_keys, keys, watches[:, 2:5])
    return _Chunk(
        viewers=keys // width,
        ranks=keys % width,
        scores=scores,
        rated_at=rated_at,
        minutes=minutes,
        max_minutes=max_minutes,
        at=np.maximum(rated_at, seen_at),
    )


def _gathered(keys: np.ndarray, wanted: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    """The columns of ``values`` (one row per key) for each of ``wanted``: 0 where ``keys``
    lacks it."""
    gathered = np.zeros((len(wanted), values.shape[1]), dtype=np.int64)
    if len(keys):
        order = np.argsort(keys, kind="stable")
        at = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
        found = keys[order][at] == wanted
        gathered[found] = values[order[at[found]]]
    return list(gathered.T)


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
        for viewer, movie, text, _ in _column_runs(directory / "ratings.csv", 4):
            scores = _integers(text)
            count, total = count + len(scores), total + int(scores.sum())
            out_of_range += int(((scores < 1) | (scores > 5)).sum())
            # The file is sorted: a repeated pair is adjacent (within a run or across two).
            viewers_run, movies_run = np.array(viewer), np.array(movie)
            duplicates += int(((viewers_run[1:] == viewers_run[:-1]) & (movies_run[1:] == movies_run[:-1])).sum())
            duplicates += (viewer[0], movie[0]) == previous
            previous = (viewer[-1], movie[-1])
        interaction_viewers: list[np.ndarray] = []
        interactions = 0
        for columns in _column_runs(directory / "interactions.csv", 6):
            interaction_viewers.append(np.unique(_integers(columns[0])))
            interactions += len(columns[0])
        viewers = np.unique(np.concatenate(interaction_viewers)) if interaction_viewers else np.zeros(0, np.int64)
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
        known = [_integers(columns[0]) for columns in _column_runs(previous_snapshot.directory / "viewers.csv", 4)]
        new = np.setdiff1d(viewers, np.concatenate(known)) if known else viewers
        new_share = len(new) / len(viewers) if len(viewers) else 0.0
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


def _column_runs(path: Path, width: int, run_bytes: int = 4 << 20) -> Iterator[list[list[str]]]:
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


def _integers(column: list[str]) -> np.ndarray:
    """A column of whole numbers; ``ValueError`` names a value that is not one."""
    return np.array(column).astype(np.int64)


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
    """Read the files into typed columns, a run of rows at a time, with no object per row."""
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
    viewer_ids, movie_columns, scores, minutes = [], [], [], []
    for viewer, movie, watched, _, score, _ in _column_runs(directory / "interactions.csv", 6):
        try:
            movie_columns.append(np.array([column[slug] for slug in movie], dtype=np.int32))
        except KeyError as error:
            raise SnapshotError(
                f"{directory / 'interactions.csv'}: movie {error.args[0]!r} is not in movies.csv"
            ) from None
        viewer_ids.append(_integers(viewer))
        text = np.array(score)
        scores.append(np.where(text == "", "nan", text).astype(np.float32))  # "" is an interaction without a rating
        minutes.append(_integers(watched).astype(np.int32))
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
