"""Feedback loops over time, from the stream (watches, ratings) and the provenance rows.

- **Echo chamber**: how concentrated exposure is (Gini over the catalogue, coverage) in each
  window; whether what was recommended in one window is what gets watched in the next (Spearman
  correlation across movies, and the most recommended movies with their next window's watches
  and mean rating); movies recommended once that stopped being recommended and never came back.
- **Filter bubble**: the genre entropy of what each group (in every dimension) watched in the
  window, each viewer's own (its mean per group, and its quartiles over everyone), and
  homogenisation: the mean Jaccard similarity of the watched sets of sampled pairs of viewers
  (as the T-RECS simulator measures it). A single viewer's series is read on demand
  (``fairness.selectors.viewer_diversity_chart``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, overload

import numpy as np
import scipy.sparse as sp
from django.db import transaction
from django.utils import timezone

from catalog.demographics import DIMENSIONS
from catalog.models import Movie, Rating, Watch
from core.db import integer_columns, raw_chunks
from core.replica import replica_reads
from fairness import metrics
from fairness.models import FeedbackWindow
from fairness.services import GroupTable, group_table_load
from provenance.models import Recommendation

# Viewer pairs sampled per window for homogenisation: at a million viewers most pairs share
# nothing and a few share everything, and 2,000 pairs gave figures a factor two apart from one
# sampling to another.
PAIRS = 20_000
# The daily task recomputes this many days, not the whole history: a window's echo and
# "stopped" figures change as later windows come, but three months on they have settled.
RECOMPUTED_DAYS = 90
# Windows smaller than a day: the last this many (more than the console draws) are computed again.
RECOMPUTED_WINDOWS = 200


@replica_reads()
def feedback_windows_compute(
    *,
    window: timedelta = timedelta(days=1),
    until: datetime | None = None,
    since: datetime | None = None,
    seed: int = 0,
) -> list[FeedbackWindow]:
    """Compute and store every whole window from the first answer or watch (or ``since``) up to
    ``until`` (now), replacing windows computed before; returns them in time order."""
    until = until or timezone.now()
    first = min(
        (
            moment
            for moment in (
                Recommendation.objects.order_by("served_at").values_list("served_at", flat=True).first(),
                Watch.objects.order_by("first_seen_at").values_list("first_seen_at", flat=True).first(),
            )
            if moment is not None
        ),
        default=None,
    )
    if first is None:
        return []
    first = max(first, since) if since is not None else first
    start = first.replace(hour=0, minute=0, second=0, microsecond=0) if window >= timedelta(days=1) else first
    bounds = []
    while start + window <= until:
        bounds.append((start, start + window))
        start += window
    genres = dict(Movie.objects.values_list("id", "genres"))
    slugs = dict(Movie.objects.values_list("slug", "id"))
    catalogue = len(genres)
    genre_table = metrics.GenreTable.of(genres)
    groups = group_table_load()
    exposures = [_exposure(low, high, slugs) for low, high in bounds]
    watches = [_watches(low, high) for low, high in bounds]
    figures = []
    for index, exposure in enumerate(exposures):
        following = watches[index + 1] if index + 1 < len(bounds) else None
        figures.append(
            {
                "answers": exposure["answers"],
                "recommended_movies": len(exposure["counts"]),
                "coverage": round(len(exposure["counts"]) / catalogue, 5) if catalogue else None,
                "gini": round(metrics.gini([exposure["counts"].get(m, 0) for m in genres]), 5) if genres else None,
                "echo": _echo(exposure["counts"], following),
                **_bubble(watches[index], genre_table, groups, np.random.default_rng(seed + index)),
            }
        )
    _stopped(exposures, figures)
    with transaction.atomic():
        FeedbackWindow.objects.filter(start__gte=bounds[0][0] if bounds else until).delete()
        return [
            FeedbackWindow.objects.create(start=low, end=high, computed_at=timezone.now(), figures=figure)
            for (low, high), figure in zip(bounds, figures, strict=True)
        ]


def _exposure(low: datetime, high: datetime, slugs: dict[str, int]) -> dict[str, Any]:
    by_slug: Counter[str] = Counter()
    answers = 0
    lists = Recommendation.objects.filter(served_at__gte=low, served_at__lt=high, status=200).values_list("items")
    # Counted by slug a chunk of lists at a time (Counter's C loop over one list), then mapped
    # to movies once: a lookup per listed movie was a third of a day's windows.
    for chunk in raw_chunks(lists, 10_000):
        answers += len(chunk)
        by_slug.update(",".join(items for (items,) in chunk if items).split(","))
    counts: Counter[int] = Counter({slugs[slug]: count for slug, count in by_slug.items() if slug in slugs})
    return {"answers": answers, "counts": counts}


@dataclass(frozen=True)
class _Watched:
    """Who started watching what in a window (each viewer and movie once, viewers in order),
    and the ratings given in it, per movie."""

    pairs: metrics.WatchPairs
    viewers: np.ndarray  # the distinct viewers, ascending
    starts: np.ndarray  # each viewer's first pair
    lengths: np.ndarray  # each viewer's number of movies
    rating_sums: dict[int, float]
    rating_counts: dict[int, int]

    def watched_counts(self) -> Counter[int]:
        movies, counts = np.unique(self.pairs.movies, return_counts=True)
        return Counter(dict(zip(movies.tolist(), counts.tolist(), strict=True)))


class _ViewerSets(Sequence[set[int]]):
    """Each viewer's watched set, made when asked for: homogenisation reads a sample of them."""

    def __init__(self, watched: _Watched) -> None:
        self.watched = watched

    def __len__(self) -> int:
        return len(self.watched.viewers)

    @overload
    def __getitem__(self, index: int) -> set[int]: ...
    @overload
    def __getitem__(self, index: slice) -> list[set[int]]: ...
    def __getitem__(self, index: int | slice) -> set[int] | list[set[int]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        start = self.watched.starts[index]
        return set(self.watched.pairs.movies[start : start + self.watched.lengths[index]].tolist())


def _watches(low: datetime, high: datetime) -> _Watched:
    """Who started watching what in the window, and the ratings given."""
    rows = integer_columns(
        Watch.objects.filter(first_seen_at__gte=low, first_seen_at__lt=high).values_list("viewer_id", "movie_id")
    )
    span = int(rows[:, 1].max()) + 1 if len(rows) else 1
    keys = np.unique(rows[:, 0] * span + rows[:, 1])  # sorted by viewer, then movie
    pairs = metrics.WatchPairs(keys // span, keys % span)
    viewers, starts, lengths = np.unique(pairs.viewers, return_index=True, return_counts=True)
    scores = integer_columns(
        Rating.objects.filter(rated_at__gte=low, rated_at__lt=high).values_list("movie_id", "score")
    )
    movies, inverse, counts = np.unique(scores[:, 0], return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=scores[:, 1], minlength=len(movies))
    return _Watched(
        pairs=pairs,
        viewers=viewers,
        starts=starts,
        lengths=lengths,
        rating_sums=dict(zip(movies.tolist(), sums.tolist(), strict=True)),
        rating_counts=dict(zip(movies.tolist(), counts.tolist(), strict=True)),
    )


def _echo(recommended: Counter[int], following: _Watched | None) -> dict[str, Any]:
    """Recommended now against watched and rated in the next window, across movies."""
    if following is None:
        return {"next_window": False}
    watched = following.watched_counts()
    movies = sorted(set(recommended) | set(watched))
    if len(movies) < 3:
        return {"next_window": True, "spearman": None, "top": []}
    shown = np.array([recommended.get(m, 0) for m in movies], dtype=float)
    taken = np.array([watched.get(m, 0) for m in movies], dtype=float)
    top = [
        {
            "movie": movie,
            "recommended": count,
            "watched_next": watched.get(movie, 0),
            "mean_rating_next": (
                round(following.rating_sums[movie] / following.rating_counts[movie], 3)
                if following.rating_counts.get(movie)
                else None
            ),
        }
        for movie, count in recommended.most_common(10)
    ]
    return {"next_window": True, "spearman": _spearman(shown, taken), "top": top}


def _spearman(first: np.ndarray, second: np.ndarray) -> float | None:
    if np.ptp(first) == 0 or np.ptp(second) == 0:
        return None
    return round(float(np.corrcoef(_average_ranks(first), _average_ranks(second))[0, 1]), 4)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _bubble(
    watches: _Watched, genre_table: metrics.GenreTable, groups: GroupTable, rng: np.random.Generator
) -> dict[str, Any]:
    pairs, viewers = watches.pairs, watches.viewers
    combinations = groups.combinations_of(viewers)
    viewer_row = np.repeat(np.arange(len(viewers)), watches.lengths)  # each pair's viewer
    # A viewer's own variety needs two movies at least: one movie is no choice between genres.
    own_entropy = _viewer_entropies(pairs, viewer_row, len(viewers), genre_table)
    choosing = watches.lengths >= 2
    own_values = own_entropy[choosing]
    per_group: dict[str, dict[str, dict[str, Any]]] = {}
    for dimension in DIMENSIONS:
        labels = groups.labels[dimension][combinations].astype(str)
        together = metrics.genre_entropy_of_pairs(pairs, labels[viewer_row], genre_table)
        together.pop("everyone", None)
        names, codes, sizes = np.unique(labels, return_inverse=True, return_counts=True)
        own_sums = np.bincount(codes[choosing], weights=own_values, minlength=len(names))
        own_counts = np.bincount(codes[choosing], minlength=len(names))
        index = {str(name): i for i, name in enumerate(names)}
        per_group[dimension] = {
            group: {
                "viewers": int(sizes[index[group]]),
                "entropy": entropy,
                "viewer_entropy": (
                    round(float(own_sums[index[group]] / own_counts[index[group]]), 4)
                    if own_counts[index[group]]
                    else None
                ),
            }
            for group, entropy in together.items()
        }
    return {
        "active_viewers": len(viewers),
        "genre_entropy": metrics.genre_entropy_of_pairs(
            pairs, groups.labels["gender"][combinations][viewer_row], genre_table
        ),
        "viewer_genre_entropy": round(float(own_values.mean()), 4) if len(own_values) else None,
        "viewer_genre_entropy_quartiles": (
            [round(float(q), 4) for q in np.quantile(own_values, [0.25, 0.5, 0.75])] if len(own_values) else None
        ),
        "groups": per_group,
        "homogenisation": homogenisation(_ViewerSets(watches), rng),
    }


def _viewer_entropies(
    pairs: metrics.WatchPairs, viewer_row: np.ndarray, viewers: int, genre_table: metrics.GenreTable
) -> np.ndarray:
    """Each viewer's genre entropy (``metrics.entropy``) over the genres of the movies they
    watched, each movie's genres once: viewers x movies times movies x genres, then the entropy
    of every row at once (counting viewer by viewer was a sixth of a day's windows)."""
    position, known = genre_table.positions(pairs.movies)
    watched = sp.csr_matrix(
        (np.ones(int(known.sum())), (viewer_row[known], position[known])),
        shape=(viewers, len(genre_table.movie_ids)),
    )
    counts = (watched @ genre_table.matrix).tocsr()
    counts.eliminate_zeros()
    rows = np.repeat(np.arange(viewers), np.diff(counts.indptr))
    totals = np.asarray(counts.sum(axis=1)).ravel()
    shares = counts.data / totals[rows]
    return np.bincount(rows, weights=-shares * np.log2(shares), minlength=viewers) + 0.0


def homogenisation(sets: Sequence[AbstractSet[int]], rng: np.random.Generator) -> float | None:
    """Mean Jaccard similarity of the watched sets of up to ``PAIRS`` random pairs of viewers."""
    if len(sets) < 2:
        return None
    total = len(sets) * (len(sets) - 1) // 2
    if total <= PAIRS:
        pairs = [(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets))]
    else:
        first = rng.integers(0, len(sets), PAIRS)
        second = (first + rng.integers(1, len(sets), PAIRS)) % len(sets)
        pairs = list(zip(first.tolist(), second.tolist(), strict=True))
    return round(float(np.mean([metrics.jaccard(sets[i], sets[j]) for i, j in pairs])), 5)


def _stopped(exposures: list[dict[str, Any]], figures: list[dict[str, Any]]) -> None:
    """In each window, the movies recommended there for the last time (never again later)."""
    last_seen: dict[int, int] = {}
    for index, exposure in enumerate(exposures):
        for movie in exposure["counts"]:
            last_seen[movie] = index
    final = len(exposures) - 1
    for index, figure in enumerate(figures):
        stopped = sorted(movie for movie, last in last_seen.items() if last == index and index < final)
        figure["stopped"] = len(stopped)
        figure["stopped_movies"] = stopped[:20]
