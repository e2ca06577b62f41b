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

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from catalog.demographics import DIMENSIONS
from catalog.models import Movie, Rating, Watch
from core.replica import replica_reads
from fairness import metrics
from fairness.models import FeedbackWindow
from fairness.services import GroupTable, group_table_load
from provenance.models import Recommendation

PAIRS = 2000  # viewer pairs sampled per window for homogenisation
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
                **_bubble(watches[index], genres, genre_table, groups, np.random.default_rng(seed + index)),
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
    lists = (
        Recommendation.objects.filter(served_at__gte=low, served_at__lt=high, status=200)
        .values_list("items", flat=True)
        .iterator(chunk_size=10_000)
    )
    # Counted by slug a chunk of lists at a time (Counter's C loop over one list), then mapped
    # to movies once: a lookup per listed movie was a third of a day's windows.
    while chunk := list(islice(lists, 10_000)):
        answers += len(chunk)
        by_slug.update(",".join(chunk).split(","))
    counts: Counter[int] = Counter({slugs[slug]: count for slug, count in by_slug.items() if slug in slugs})
    return {"answers": answers, "counts": counts}


def _watches(low: datetime, high: datetime) -> dict[str, Any]:
    """Who started watching what in the window, and the ratings given."""
    by_viewer: dict[int, set[int]] = defaultdict(set)
    for viewer, movie in Watch.objects.filter(first_seen_at__gte=low, first_seen_at__lt=high).values_list(
        "viewer_id", "movie_id"
    ):
        by_viewer[viewer].add(movie)
    scores: dict[int, list[int]] = defaultdict(list)
    for movie, score in Rating.objects.filter(rated_at__gte=low, rated_at__lt=high).values_list("movie_id", "score"):
        scores[movie].append(score)
    return {"by_viewer": by_viewer, "scores": scores}


def _echo(recommended: Counter[int], following: dict[str, Any] | None) -> dict[str, Any]:
    """Recommended now against watched and rated in the next window, across movies."""
    if following is None:
        return {"next_window": False}
    watched: Counter[int] = Counter(movie for movies in following["by_viewer"].values() for movie in movies)
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
                round(float(np.mean(following["scores"][movie])), 3) if following["scores"].get(movie) else None
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
    watches: dict[str, Any],
    genres: dict[int, list[str]],
    genre_table: metrics.GenreTable,
    groups: GroupTable,
    rng: np.random.Generator,
) -> dict[str, Any]:
    by_viewer: dict[int, set[int]] = watches["by_viewer"]
    viewers = np.array(sorted(by_viewer), dtype=np.int64)
    of_viewers = {dimension: groups.of(viewers, dimension) for dimension in DIMENSIONS}
    labels = {
        dimension: dict(zip(viewers.tolist(), of_viewers[dimension].tolist(), strict=True)) for dimension in DIMENSIONS
    }
    # Built once per window, for every dimension's count: the pairs, and each pair's viewer's row.
    pairs = metrics.WatchPairs.of(by_viewer)
    viewer_row = np.searchsorted(viewers, pairs.viewers)
    pair_labels = {dimension: of_viewers[dimension][viewer_row] for dimension in DIMENSIONS}
    # A viewer's own variety needs two movies at least: one movie is no choice between genres.
    own = {
        viewer: metrics.entropy(list(Counter(genre for movie in movies for genre in genres.get(movie, [])).values()))
        for viewer, movies in by_viewer.items()
        if len(movies) >= 2
    }
    per_group: dict[str, dict[str, dict[str, Any]]] = {}
    for dimension in DIMENSIONS:
        together = metrics.genre_entropy_of_pairs(pairs, pair_labels[dimension], genre_table)
        together.pop("everyone", None)
        sizes = Counter(labels[dimension].values())
        own_by_group: dict[str, list[float]] = defaultdict(list)
        for viewer, value in own.items():
            own_by_group[labels[dimension][viewer]].append(value)
        per_group[dimension] = {
            group: {
                "viewers": sizes[group],
                "entropy": entropy,
                "viewer_entropy": round(float(np.mean(own_by_group[group])), 4) if own_by_group[group] else None,
            }
            for group, entropy in together.items()
        }
    own_values = np.array(list(own.values()))
    return {
        "active_viewers": len(by_viewer),
        "genre_entropy": metrics.genre_entropy_of_pairs(pairs, pair_labels["gender"], genre_table),
        "viewer_genre_entropy": round(float(own_values.mean()), 4) if len(own_values) else None,
        "viewer_genre_entropy_quartiles": (
            [round(float(q), 4) for q in np.quantile(own_values, [0.25, 0.5, 0.75])] if len(own_values) else None
        ),
        "groups": per_group,
        "homogenisation": homogenisation(list(by_viewer.values()), rng),
    }


def homogenisation(sets: list[set[int]], rng: np.random.Generator) -> float | None:
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
