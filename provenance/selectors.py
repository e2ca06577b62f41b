"""Reads of the provenance rows as arrays: what was served to whom over a window, and whether
each answer was followed by a watch of one of its movies.

The canary analysis (a few thousand answers every few minutes) and the daily fairness report
(millions) read through the same two functions, so "followed" means one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any

import numpy as np

from catalog.models import Movie, Watch
from core.db import EpochSeconds, integer_columns, raw_chunks
from provenance.models import Recommendation

# Up to this many viewers, their watches are read through the (viewer, movie) index; past it one
# pass over the window's watches reads less than a lookup per viewer.
_BY_VIEWER_LIMIT = 20_000
_VIEWER_CHUNK = 2_000


@dataclass(frozen=True)
class ServedAnswers:
    """The successful answers of a window, one row per answer, in the order served."""

    viewers: np.ndarray  # the requested user id
    served_at: np.ndarray  # Unix seconds
    items: np.ndarray  # answers x slots: Movie pk in the order served, -1 for an empty slot or an unknown id
    explored: np.ndarray  # answers x slots: placed by exploration
    strategies: np.ndarray  # Recommendation.Strategy values
    versions: np.ndarray  # ModelVersion pk, 0 for none
    degraded: np.ndarray  # answered without the database or by a stand-in version

    def __len__(self) -> int:
        return len(self.viewers)


def served_answers(*, start: datetime, end: datetime, pool: str | None = None) -> ServedAnswers:
    """Every answer with status 200 served in [start, end) (by ``pool`` if given)."""
    rows = Recommendation.objects.filter(served_at__gte=start, served_at__lt=end, status=200)
    if pool is not None:
        rows = rows.filter(pool=pool)
    query = (
        rows.annotate(epoch=EpochSeconds("served_at"))
        .order_by("served_at", "id")
        .values_list("viewer_id", "epoch", "items", "explored", "strategy", "model_version_id", "degraded")
    )
    movie_of = dict(Movie.objects.values_list("slug", "id"))
    parts = [_answer_columns(chunk, movie_of) for chunk in raw_chunks(query)]
    if not parts:
        return ServedAnswers(
            viewers=np.zeros(0, dtype=np.int64),
            served_at=np.zeros(0, dtype=np.int64),
            items=np.full((0, 0), -1, dtype=np.int64),
            explored=np.zeros((0, 0), dtype=bool),
            strategies=np.zeros(0, dtype=object),
            versions=np.zeros(0, dtype=np.int64),
            degraded=np.zeros(0, dtype=bool),
        )
    width = max(part.items.shape[1] for part in parts)
    return ServedAnswers(
        viewers=np.concatenate([part.viewers for part in parts]),
        served_at=np.concatenate([part.served_at for part in parts]),
        items=np.concatenate([_widened(part.items, width, -1) for part in parts]),
        explored=np.concatenate([_widened(part.explored, width, False) for part in parts]),
        strategies=np.concatenate([part.strategies for part in parts]),
        versions=np.concatenate([part.versions for part in parts]),
        degraded=np.concatenate([part.degraded for part in parts]),
    )


def _answer_columns(chunk: list[tuple[Any, ...]], movie_of: dict[str, int]) -> ServedAnswers:
    """One chunk of rows as arrays: every list's ids looked up at once, then placed by row."""
    viewers, moments, items, placed, strategies, versions, degraded = zip(*chunk, strict=True)
    lengths = np.array([text.count(",") + 1 if text else 0 for text in items], dtype=np.int64)
    slugs = ",".join(text for text in items if text).split(",") if lengths.any() else []
    ids = np.fromiter(map(movie_of.get, slugs, repeat(-1)), dtype=np.int64, count=len(slugs))
    rows = np.repeat(np.arange(len(chunk)), lengths)
    slots = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    matrix = np.full((len(chunk), int(lengths.max(initial=0))), -1, dtype=np.int64)
    matrix[rows, slots] = ids
    explored = np.zeros(matrix.shape, dtype=bool)
    for row, chosen in enumerate(placed):
        if chosen:  # exploration is rare (and off by default): only those rows are read again
            marked = set(chosen.split(","))
            explored[row, : lengths[row]] = [slug in marked for slug in items[row].split(",")]
    return ServedAnswers(
        viewers=np.array(viewers, dtype=np.int64),
        served_at=np.array(moments, dtype=np.int64),
        items=matrix,
        explored=explored,
        strategies=np.array(strategies, dtype=object),
        versions=np.array([version or 0 for version in versions], dtype=np.int64),
        degraded=np.array(degraded, dtype=bool),
    )


def _widened(matrix: np.ndarray, width: int, fill: object) -> np.ndarray:
    if matrix.shape[1] == width:
        return matrix
    wider = np.full((matrix.shape[0], width), fill, dtype=matrix.dtype)
    wider[:, : matrix.shape[1]] = matrix
    return wider


def answers_followed(answers: ServedAnswers, *, within: timedelta, pairs_per_step: int = 2_000_000) -> np.ndarray:
    """Per answer: did the viewer start watching one of its movies within ``within`` of it?

    Worked from the watches' side: each watch is set against its viewer's answers (found by
    one search per watch in the answers sorted by viewer) and looks for its movie in their
    lists, ``pairs_per_step`` (watch, answer) pairs at a time. Looking every listed movie up
    among the watches was twenty searches per answer."""
    followed = np.zeros(len(answers), dtype=bool)
    if not len(answers):
        return followed
    first = datetime.fromtimestamp(int(answers.served_at.min()), tz=UTC)
    last = datetime.fromtimestamp(int(answers.served_at.max()) + 1, tz=UTC) + within
    watches = _watches_started(np.unique(answers.viewers), first, last)
    if not len(watches):
        return followed
    by_viewer = np.argsort(answers.viewers, kind="stable")
    viewers = answers.viewers[by_viewer]
    low = np.searchsorted(viewers, watches[:, 0], "left")
    counts = np.searchsorted(viewers, watches[:, 0], "right") - low
    ends = np.cumsum(counts)
    seconds = within.total_seconds()
    start = 0
    while start < len(watches):
        # Whole watches per step, as many as keep the pairs within the bound (one at least).
        stop = max(start + 1, int(np.searchsorted(ends, ends[start] - counts[start] + pairs_per_step, "right")))
        step = counts[start:stop]
        watch = np.repeat(np.arange(start, stop), step)
        offset = np.arange(len(watch)) - np.repeat(np.cumsum(step) - step, step)  # 0.. within each watch
        answer = by_viewer[np.repeat(low[start:stop], step) + offset]
        listed = (answers.items[answer] == watches[watch, 1][:, None]).any(axis=1)
        at, served = watches[watch, 2], answers.served_at[answer]
        followed[answer[listed & (at >= served) & (at < served + seconds)]] = True
        start = stop
    return followed


def _watches_started(viewers: np.ndarray, first: datetime, last: datetime) -> np.ndarray:
    """(viewer, movie, first seen in Unix seconds) of the watches those viewers started in
    [first, last); a viewer watches a movie once (unique), so the key is unique."""
    window = Watch.objects.filter(first_seen_at__gte=first, first_seen_at__lt=last).annotate(
        epoch=EpochSeconds("first_seen_at")
    )
    if len(viewers) > _BY_VIEWER_LIMIT:
        rows = integer_columns(window.values_list("viewer_id", "movie_id", "epoch"))
        return rows[np.isin(rows[:, 0], viewers)]
    parts = [
        integer_columns(
            window.filter(viewer_id__in=viewers[start : start + _VIEWER_CHUNK].tolist()).values_list(
                "viewer_id", "movie_id", "epoch"
            )
        )
        for start in range(0, len(viewers), _VIEWER_CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)
