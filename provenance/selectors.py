"""Reads of the provenance rows as arrays: what was served to whom over a window, and whether
each answer was followed by a watch of one of its movies.

The canary analysis (a few thousand answers every few minutes) and the daily fairness report
(millions) read through the same two functions, so "followed" means one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from catalog.models import Movie, Watch
from core.db import EpochSeconds, integer_columns
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
    strategies: np.ndarray  # personalized, history, cold-start (with -degraded)
    versions: np.ndarray  # ModelVersion pk, 0 for none

    def __len__(self) -> int:
        return len(self.viewers)


def served_answers(*, start: datetime, end: datetime, pool: str | None = None) -> ServedAnswers:
    """Every answer with status 200 served in [start, end) (by ``pool`` if given)."""
    rows = Recommendation.objects.filter(served_at__gte=start, served_at__lt=end, status=200)
    if pool is not None:
        rows = rows.filter(pool=pool)
    movie_of = dict(Movie.objects.values_list("slug", "id"))
    viewers: list[int] = []
    served: list[int] = []
    lists: list[list[int]] = []
    explored: list[list[bool]] = []
    strategies: list[str] = []
    versions: list[int] = []
    for viewer, moment, items, placed, strategy, version in (
        rows.annotate(epoch=EpochSeconds("served_at"))
        .order_by("served_at", "id")
        .values_list("viewer_id", "epoch", "items", "explored", "strategy", "model_version_id")
        .iterator(chunk_size=20_000)
    ):
        slugs = items.split(",") if items else []
        chosen = set(placed.split(",")) if placed else ()
        viewers.append(viewer)
        served.append(moment)
        lists.append([movie_of.get(slug, -1) for slug in slugs])
        explored.append([slug in chosen for slug in slugs])
        strategies.append(strategy)
        versions.append(version or 0)
    width = max((len(movies) for movies in lists), default=0)
    item_matrix = np.full((len(lists), width), -1, dtype=np.int64)
    explored_matrix = np.zeros((len(lists), width), dtype=bool)
    for row, (movies, flags) in enumerate(zip(lists, explored, strict=True)):
        item_matrix[row, : len(movies)] = movies
        explored_matrix[row, : len(flags)] = flags
    return ServedAnswers(
        viewers=np.array(viewers, dtype=np.int64),
        served_at=np.array(served, dtype=np.int64),
        items=item_matrix,
        explored=explored_matrix,
        strategies=np.array(strategies, dtype=object),
        versions=np.array(versions, dtype=np.int64),
    )


def answers_followed(answers: ServedAnswers, *, within: timedelta) -> np.ndarray:
    """Per answer: did the viewer start watching one of its movies within ``within`` of it?"""
    if not len(answers):
        return np.zeros(0, dtype=bool)
    first = datetime.fromtimestamp(int(answers.served_at.min()), tz=UTC)
    last = datetime.fromtimestamp(int(answers.served_at.max()) + 1, tz=UTC) + within
    watches = _watches_started(np.unique(answers.viewers), first, last)
    if not len(watches):
        return np.zeros(len(answers), dtype=bool)
    span = int(max(watches[:, 1].max(), answers.items.max(initial=0))) + 1
    keys = watches[:, 0] * span + watches[:, 1]
    order = np.argsort(keys, kind="stable")
    keys, started = keys[order], watches[order, 2]
    wanted = answers.viewers[:, None] * span + answers.items
    found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    seen = (keys[found] == wanted) & (answers.items >= 0)
    at = started[found]
    served = answers.served_at[:, None]
    return np.asarray((seen & (at >= served) & (at < served + within.total_seconds())).any(axis=1))


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
