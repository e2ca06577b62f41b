"""Fairness and diversity figures: pure functions over arrays, each with a definition a test pins.

Per-group quality and its bootstrap intervals come from Fairlearn's ``MetricFrame`` (the
reference implementation); the rest are the field's usual definitions, written here because no
maintained library offers them over sparse recommendation lists.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import scipy.sparse as sp


def entropy(counts: Sequence[float] | np.ndarray) -> float:
    """Shannon entropy in bits of a distribution given by counts (zeros ignored): 0 for one
    category, log2(k) for k equally frequent ones."""
    values = np.asarray(counts, dtype=np.float64)
    values = values[values > 0]
    if not len(values):
        return 0.0
    shares = values / values.sum()
    return float(-(shares * np.log2(shares)).sum()) + 0.0


def gini(values: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative amounts (exposure per movie): 0 when all are equal, close
    to 1 when one has everything. Include the zeros: a movie never shown is part of the inequality."""
    amounts = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(amounts), amounts.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * amounts).sum()) / (n * total) - (n + 1) / n)


def genre_entropy_by_group(
    watched: Mapping[int, Iterable[int]], group_of: Mapping[int, str], genres_of: Mapping[int, Iterable[str]]
) -> dict[str, float]:
    """The genre entropy of what each group of viewers watched together (a movie counts once per
    viewer who watched it, each of its genres once), and of everyone's together."""
    per_group: dict[str, Counter[str]] = defaultdict(Counter)
    for viewer, movies in watched.items():
        counted = Counter(genre for movie in movies for genre in genres_of.get(movie, ()))
        per_group[group_of[viewer]].update(counted)
        per_group["everyone"].update(counted)
    return {group: round(entropy(list(counts.values())), 4) for group, counts in sorted(per_group.items())}


def exposure_summary(exposure: np.ndarray, popularity: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Exposure over a catalogue (times each movie was recommended, in the order of ``names``):
    coverage, Gini, the movies never recommended and the ten most watched of them."""
    never = exposure == 0
    most_watched = np.argsort(-np.where(never, popularity, -1.0), kind="stable")[:10]
    return {
        "catalogue": len(names),
        "coverage": round(float((exposure > 0).mean()), 5) if len(names) else None,
        "gini": round(gini(exposure), 5) if len(names) else None,
        "never_recommended": int(never.sum()),
        "never_recommended_most_watched": [str(names[m]) for m in most_watched if never[m]],
    }


def jaccard(first: AbstractSet[Hashable], second: AbstractSet[Hashable]) -> float:
    """The share of their union the two sets have in common; two empty sets are identical (1)."""
    union = len(first | second)
    return 1.0 if union == 0 else len(first & second) / union


def intra_list_diversity(genres: Sequence[frozenset[str]]) -> float | None:
    """Mean genre dissimilarity (1 - Jaccard) over the pairs of items in one list; ``None`` for
    a list of fewer than two items."""
    if len(genres) < 2:
        return None
    pairs = list(combinations(genres, 2))
    return sum(1.0 - jaccard(a, b) for a, b in pairs) / len(pairs)


def list_diversities(top: np.ndarray, movie_genres: sp.csr_matrix, batch: int = 20_000) -> np.ndarray:
    """``intra_list_diversity`` of every list at once: ``top`` holds movie columns per list (-1
    for an empty slot), ``movie_genres`` is movies x genres (0/1). Computed in batches of lists
    (their genre sets as a dense lists x slots x genres block); NaN for a list under two movies."""
    genres = movie_genres.toarray().astype(np.float32)
    result = np.full(len(top), np.nan)
    k = top.shape[1]
    if k < 2 or not genres.shape[1]:
        return result
    upper = np.triu(np.ones((k, k), dtype=bool), 1)
    for start in range(0, len(top), batch):
        block = top[start : start + batch]
        valid = block >= 0
        sets = genres[np.maximum(block, 0)] * valid[:, :, None]
        inter = np.einsum("vig,vjg->vij", sets, sets)
        sizes = sets.sum(axis=2)
        union = sizes[:, :, None] + sizes[:, None, :] - inter
        similarity = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        pair_valid = valid[:, :, None] & valid[:, None, :] & upper
        counted = pair_valid.sum(axis=(1, 2))
        dissimilar = ((1.0 - similarity) * pair_valid).sum(axis=(1, 2))
        result[start : start + batch] = np.where(counted > 0, dissimilar / np.maximum(counted, 1), np.nan)
    return result


def mean_absolute_deviation(values: Sequence[float]) -> float | None:
    """The mean absolute difference between every two groups' figures, as Elliot's UserMAD
    metrics define it (for two groups, their difference); ``None`` below two groups."""
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if len(finite) < 2:
        return None
    pairs = list(combinations(finite, 2))
    return sum(abs(a - b) for a, b in pairs) / len(pairs)


def rmse(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(estimate, np.float64) - np.asarray(truth, np.float64)) ** 2)))


def mae(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(estimate, np.float64) - np.asarray(truth, np.float64))))


def mean_of_truth(truth: np.ndarray, _: np.ndarray) -> float:
    """For per-viewer figures (NDCG@10 of each viewer): the group's mean."""
    return float(np.mean(np.asarray(truth, np.float64)))


@dataclass(frozen=True)
class GroupFigure:
    value: float | None
    low: float | None  # the bootstrap interval's bounds (None without one)
    high: float | None

    def rounded(self, digits: int = 5) -> list[float | None]:
        """[figure, low, high] as a report stores them."""
        return [None if part is None else round(part, digits) for part in (self.value, self.low, self.high)]


@dataclass(frozen=True)
class GroupedMetric:
    """One metric per group, with bootstrap intervals, as Fairlearn's ``MetricFrame`` gives it."""

    overall: GroupFigure
    groups: dict[str, GroupFigure]
    sizes: dict[str, int]


# Fairlearn's cost grows with the rows of each resample (about a second per resample of 200,000
# rows and a dimension's groups); past this many rows the intervals come from a seeded sample,
# which keeps an interval of a share within about a point.
BOOTSTRAP_ROWS = 50_000


def grouped_metrics(
    functions: dict[str, Callable[[np.ndarray, np.ndarray], float]],
    truth: np.ndarray,
    estimate: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int,
    seed: int,
    quantiles: tuple[float, float] = (0.025, 0.975),
    max_boot_rows: int = BOOTSTRAP_ROWS,
) -> dict[str, GroupedMetric]:
    """Each of ``functions`` overall and per group, with Fairlearn's bootstrap intervals
    (``n_boot`` resamples, seeded); one ``MetricFrame`` for all of them, since a resample's cost
    is mostly the frame's. The figures come from every row. Past ``max_boot_rows`` rows an
    interval's spread comes from a seeded sample of that many rows (wider than every row's, so
    on the safe side) and is placed around the figure: the sample's own figure differs from it
    by the sample's noise, and an interval around that could miss the figure."""
    from fairlearn.metrics import MetricFrame

    if not len(truth):
        return {name: GroupedMetric(GroupFigure(None, None, None), {}, {}) for name in functions}
    if len(truth) == 1:
        # Fairlearn cannot tell one row of features from a row of several features; one row is
        # its own figure, and every resample of it is the same row.
        label = str(groups[0])
        result = {}
        for name, function in functions.items():
            value = _finite(function(truth, estimate))
            bounds = (value, value) if n_boot > 0 else (None, None)
            result[name] = GroupedMetric(GroupFigure(value, *bounds), {label: GroupFigure(value, *bounds)}, {label: 1})
        return result
    frame = MetricFrame(metrics=functions, y_true=truth, y_pred=estimate, sensitive_features=groups)
    labels, sizes = np.unique(groups, return_counts=True)
    low_frame: Any = None
    high_frame: Any = None
    overall_low: Any = None
    overall_high: Any = None
    sample_by_group: Any = None
    sample_overall: Any = None
    if n_boot > 0:
        rows = np.arange(len(truth))
        if len(rows) > max_boot_rows:
            rows = np.sort(np.random.default_rng(seed).choice(rows, max_boot_rows, replace=False))
        sampled = len(rows) < len(truth)
        with warnings.catch_warnings():
            # A small group can be absent from a resample: Fairlearn warns, and leaves it out.
            warnings.simplefilter("ignore")
            booted = MetricFrame(
                metrics=functions,
                y_true=truth[rows],
                y_pred=estimate[rows],
                sensitive_features=groups[rows],
                n_boot=n_boot,
                ci_quantiles=list(quantiles),
                random_state=seed,
            )
        low_frame, high_frame = booted.by_group_ci
        overall_low, overall_high = booted.overall_ci
        if sampled:
            sample_by_group, sample_overall = booted.by_group, booted.overall
    result = {}
    for name in functions:
        by_group = {str(key): float(value) for key, value in frame.by_group[name].items()}
        lows = {str(key): float(value) for key, value in low_frame[name].items()} if low_frame is not None else {}
        highs = {str(key): float(value) for key, value in high_frame[name].items()} if high_frame is not None else {}
        centres = (
            {str(key): float(value) for key, value in sample_by_group[name].items()}
            if sample_by_group is not None
            else {}
        )
        overall = float(frame.overall[name])
        overall_ci: tuple[float | None, float | None] = (
            (float(overall_low[name]), float(overall_high[name])) if overall_low is not None else (None, None)
        )
        if sample_overall is not None:
            overall_ci = _placed(overall, overall_ci[0], overall_ci[1], float(sample_overall[name]))
        figures = {}
        for label in map(str, labels):
            value = _finite(by_group.get(label))
            low, high = lows.get(label), highs.get(label)
            if label in centres:
                low, high = _placed(value, low, high, centres[label])
            figures[label] = GroupFigure(value, low, high)
        result[name] = GroupedMetric(
            overall=GroupFigure(overall, *overall_ci),
            groups=figures,
            sizes={str(label): int(size) for label, size in zip(labels, sizes, strict=True)},
        )
    return result


def _placed(
    value: float | None, low: float | None, high: float | None, centre: float
) -> tuple[float | None, float | None]:
    """A sample's interval [low, high] around its own figure ``centre``, moved to ``value``."""
    if value is None or low is None or high is None or not math.isfinite(centre):
        return low, high
    return value - (centre - low), value + (high - centre)


def grouped_metric(
    function: Callable[[np.ndarray, np.ndarray], float],
    truth: np.ndarray,
    estimate: np.ndarray,
    groups: np.ndarray,
    **options: Any,
) -> GroupedMetric:
    """One metric per group: ``grouped_metrics`` of one function."""
    return grouped_metrics({"metric": function}, truth, estimate, groups, **options)["metric"]


def ratio_of_sums(truth: np.ndarray, estimate: np.ndarray) -> float:
    """For counts per viewer (answers followed, answers): the share over all of them together."""
    total = float(np.sum(estimate))
    return float(np.sum(truth)) / total if total else math.nan


def mean_of_estimate(_: np.ndarray, estimate: np.ndarray) -> float:
    """For a second per-viewer figure carried as the estimate (recall beside NDCG)."""
    return float(np.mean(np.asarray(estimate, np.float64)))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Disparity:
    """How far apart the groups are on one metric, over the groups large enough to compare."""

    best: str | None
    worst: str | None
    difference: float | None  # best - worst, in the metric's units
    ratio: float | None  # worst / best for a higher-is-better metric, best / worst for an error
    mad: float | None  # mean absolute difference between every two groups


def disparity(values: dict[str, float | None], *, higher_is_better: bool) -> Disparity:
    compared = {group: value for group, value in values.items() if value is not None and math.isfinite(value)}
    if len(compared) < 2:
        return Disparity(None, None, None, None, None)
    order = sorted(compared, key=lambda group: compared[group], reverse=higher_is_better)
    best, worst = order[0], order[-1]
    high, low = max(compared[best], compared[worst]), min(compared[best], compared[worst])
    return Disparity(
        best=best,
        worst=worst,
        difference=abs(compared[best] - compared[worst]),
        ratio=(low / high) if high else None,
        mad=mean_absolute_deviation(list(compared.values())),
    )
