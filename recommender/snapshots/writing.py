"""Writing a snapshot's files from the database, a chunk of viewers at a time."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from catalog.models import Movie, Rating, Viewer, Watch
from core.db import EpochSeconds, integer_columns
from recommender.snapshots.files import INTERACTION_COLUMNS, MOVIE_COLUMNS, RATING_COLUMNS, VIEWER_COLUMNS


def write_files(directory: Path) -> dict[str, object]:
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
