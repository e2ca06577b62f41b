"""Fairness and diversity figures: pure functions over arrays, each with a definition a test pins.

Per-group quality and its bootstrap intervals come from Fairlearn's ``MetricFrame`` (the
reference implementation); the rest are the field's usual definitions, written here because no
maintained library offers them over sparse recommendation lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import combinations
from statistics import NormalDist
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


@dataclass(frozen=True)
class GenreTable:
    """Each movie's genres as a sparse matrix (movies in id order x genres), each genre once."""

    movie_ids: np.ndarray
    matrix: sp.csr_matrix

    @classmethod
    def of(cls, genres_of: Mapping[int, Iterable[str]]) -> GenreTable:
        movie_ids = np.array(sorted(genres_of), dtype=np.int64)
        names = sorted({genre for genres in genres_of.values() for genre in genres})
        code = {genre: index for index, genre in enumerate(names)}
        rows, columns = [], []
        for index, movie in enumerate(movie_ids.tolist()):
            for genre in set(genres_of[movie]):
                rows.append(index)
                columns.append(code[genre])
        matrix = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(movie_ids), len(names)))
        return cls(movie_ids, matrix)

    def positions(self, movies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``movies`` in the matrix, and which of them have one (a known movie)."""
        if not len(self.movie_ids):
            return np.zeros(len(movies), dtype=np.int64), np.zeros(len(movies), dtype=bool)
        position = np.searchsorted(self.movie_ids, movies)
        clipped = np.minimum(position, len(self.movie_ids) - 1)
        return clipped, self.movie_ids[clipped] == movies


@dataclass(frozen=True)
class WatchPairs:
    """Who watched what, as two aligned arrays of (viewer, movie) pairs, viewers in order."""

    viewers: np.ndarray
    movies: np.ndarray

    @classmethod
    def of(cls, watched: Mapping[int, Iterable[int]]) -> WatchPairs:
        viewers = sorted(watched)
        movie_lists = [list(watched[viewer]) for viewer in viewers]
        lengths = [len(movies) for movies in movie_lists]
        return cls(
            np.repeat(np.array(viewers, dtype=np.int64), lengths),
            np.fromiter((movie for movies in movie_lists for movie in movies), dtype=np.int64, count=sum(lengths)),
        )


def genre_entropy_by_group(
    watched: Mapping[int, Iterable[int]], group_of: Mapping[int, str], genres_of: Mapping[int, Iterable[str]]
) -> dict[str, float]:
    """The genre entropy of what each group of viewers watched together (a movie counts once per
    viewer who watched it, each of its genres once), and of everyone's together."""
    pairs = WatchPairs.of(watched)
    labels = np.array([group_of[viewer] for viewer in pairs.viewers.tolist()], dtype=object)
    return genre_entropy_of_pairs(pairs, labels, GenreTable.of(genres_of))


def genre_entropy_of_pairs(pairs: WatchPairs, labels: np.ndarray, genres: GenreTable) -> dict[str, float]:
    """``genre_entropy_by_group`` from pairs, ``labels`` the group of each pair's viewer: how often
    each group watched each movie (one count over every pair), times each movie's genres.
    Counting genres viewer by viewer was most of a day's feedback windows at a million viewers."""
    groups, codes = np.unique(labels.astype(str), return_inverse=True)
    if not len(groups):
        return {}
    position, known = genres.positions(pairs.movies)
    # Pairs of a movie with no genres known add nothing, as a movie with none.
    watches = sp.csr_matrix(
        (np.ones(int(known.sum())), (codes[known], position[known])), shape=(len(groups), len(genres.movie_ids))
    )
    counts = np.asarray((watches @ genres.matrix).todense())
    result = {str(group): round(entropy(counts[code]), 4) for code, group in enumerate(groups)}
    result["everyone"] = round(entropy(counts.sum(axis=0)), 4)
    return dict(sorted(result.items()))


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


# Each takes Fairlearn's per-row ``sample_weight``: ``grouped_metrics`` hands MetricFrame each
# distinct row once, weighted by how often it occurs.


def rmse(truth: np.ndarray, estimate: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    errors = (np.asarray(estimate, np.float64) - np.asarray(truth, np.float64)) ** 2
    return float(np.sqrt(np.average(errors, weights=sample_weight)))


def mae(truth: np.ndarray, estimate: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    errors = np.abs(np.asarray(estimate, np.float64) - np.asarray(truth, np.float64))
    return float(np.average(errors, weights=sample_weight))


def mean_of_truth(truth: np.ndarray, _: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """For per-viewer figures (NDCG@10 of each viewer): the group's mean."""
    return float(np.average(np.asarray(truth, np.float64), weights=sample_weight))


def ratio_of_sums(truth: np.ndarray, estimate: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """For counts per viewer (answers followed, answers): the share over all of them together."""
    weights = 1.0 if sample_weight is None else np.asarray(sample_weight, np.float64)
    total = float(np.sum(weights * np.asarray(estimate, np.float64)))
    return float(np.sum(weights * np.asarray(truth, np.float64))) / total if total else math.nan


def mean_of_estimate(_: np.ndarray, estimate: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """For a second per-viewer figure carried as the estimate (recall beside NDCG)."""
    return float(np.average(np.asarray(estimate, np.float64), weights=sample_weight))


@dataclass(frozen=True)
class GroupFigure:
    value: float | None
    low: float | None  # the bootstrap interval's bounds (None without one)
    high: float | None

    def rounded(self, digits: int = 5) -> list[float | None]:
        """[figure, low, high] as a report stores them."""
        return [None if part is None else round(part, digits) for part in (self.value, self.low, self.high)]


@dataclass(frozen=True)
class RowMetric:
    """A metric over rows that is a function of two sums, so that a bootstrap resample's figure
    for every group is two weighted counts rather than a data frame: ``function`` is what
    Fairlearn's ``MetricFrame`` computes the figures with, ``parts`` gives each row's numerator
    and denominator, ``finish`` turns their ratio into the figure (a square root for RMSE)."""

    function: Callable[..., float]
    parts: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    finish: Callable[[np.ndarray], np.ndarray] = np.asarray


def _each_row(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values, np.ones_like(values)


RMSE = RowMetric(rmse, lambda truth, estimate: _each_row((estimate - truth) ** 2), np.sqrt)
MAE = RowMetric(mae, lambda truth, estimate: _each_row(np.abs(estimate - truth)))
MEAN_OF_TRUTH = RowMetric(mean_of_truth, lambda truth, _: _each_row(truth))
MEAN_OF_ESTIMATE = RowMetric(mean_of_estimate, lambda _, estimate: _each_row(estimate))
RATIO_OF_SUMS = RowMetric(ratio_of_sums, lambda truth, estimate: (truth, estimate))


@dataclass(frozen=True)
class GroupedMetric:
    """One metric per group, with bootstrap intervals, as Fairlearn's ``MetricFrame`` gives it;
    ``resamples`` keeps each group's figure in every resample (NaN where a resample had none of
    its rows), so that a difference between two groups gets its interval from the same resamples."""

    overall: GroupFigure
    groups: dict[str, GroupFigure]
    sizes: dict[str, int]
    resamples: dict[str, np.ndarray] = field(default_factory=dict, compare=False)


# A resample costs a pass over its rows; past this many rows the intervals come from a seeded
# sample, which keeps an interval of a share within a fraction of a point.
BOOTSTRAP_ROWS = 1_000_000


def grouped_metrics(
    functions: dict[str, RowMetric],
    truth: np.ndarray,
    estimate: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int,
    seed: int,
    quantiles: tuple[float, float] = (0.025, 0.975),
    max_boot_rows: int = BOOTSTRAP_ROWS,
) -> dict[str, GroupedMetric]:
    """Each of ``functions`` overall and per group (Fairlearn's ``MetricFrame``, from every row),
    with percentile bootstrap intervals over ``n_boot`` resamples of the rows, as ``MetricFrame``
    draws them (``n`` rows with replacement), computed for all groups at once from weighted sums.
    Past ``max_boot_rows`` rows an interval's spread comes from a seeded sample of that many rows
    (wider than every row's, so on the safe side) and is placed around the figure: the sample's
    own figure differs from it by the sample's noise, and an interval around that could miss it."""
    from fairlearn.metrics import MetricFrame

    if not len(truth):
        return {name: GroupedMetric(GroupFigure(None, None, None), {}, {}) for name in functions}
    labels, codes, sizes = np.unique(np.asarray(groups).astype(str), return_inverse=True, return_counts=True)
    if len(truth) == 1:
        # Fairlearn cannot tell one row of features from a row of several features; one row is
        # its own figure, and every resample of it is the same row.
        label = str(labels[0])
        result = {}
        for name, metric in functions.items():
            value = _finite(metric.function(truth, estimate))
            same = (value, value) if n_boot > 0 else (None, None)
            again = {label: np.full(n_boot, np.nan if value is None else value)}
            figure = GroupFigure(value, *same)
            result[name] = GroupedMetric(figure, {label: figure}, {label: 1}, again)
        return result
    frame = MetricFrame(**_distinct_rows(functions, truth, estimate, codes, labels))
    booted = (
        _bootstrap(functions, truth, estimate, codes, len(labels), n_boot=n_boot, seed=seed, max_rows=max_boot_rows)
        if n_boot > 0
        else None
    )
    result = {}
    for name in functions:
        by_group = {str(key): _finite(float(value)) for key, value in frame.by_group[name].items()}
        overall = _finite(float(frame.overall[name]))
        figures, resamples = {}, {}
        overall_figure = GroupFigure(overall, None, None)
        if booted is not None:
            per_group, everyone, centres = booted[name]
            overall_figure = GroupFigure(overall, *_interval(everyone, quantiles, overall, centres[-1]))
            for index, label in enumerate(map(str, labels)):
                resamples[label] = per_group[:, index]
        for index, label in enumerate(map(str, labels)):
            value = by_group.get(label)
            bounds: tuple[float | None, float | None] = (None, None)
            if booted is not None:
                bounds = _interval(resamples[label], quantiles, value, booted[name][2][index])
            figures[label] = GroupFigure(value, *bounds)
        result[name] = GroupedMetric(
            overall=overall_figure,
            groups=figures,
            sizes={str(label): int(size) for label, size in zip(labels, sizes, strict=True)},
            resamples=resamples,
        )
    return result


def _distinct_rows(
    functions: dict[str, RowMetric], truth: np.ndarray, estimate: np.ndarray, codes: np.ndarray, labels: np.ndarray
) -> dict[str, Any]:
    """MetricFrame's arguments: each distinct (group, truth, estimate) row once, weighted by how
    often it occurs, when that is at most half the rows. The figures are the same; MetricFrame's
    cost is per row (it stacks each group's values one by one), and per-viewer counts repeat: a
    day's 865,000 viewers served are a few hundred distinct rows per group."""
    arguments: dict[str, Any] = {
        "metrics": {name: metric.function for name, metric in functions.items()},
        "y_true": truth,
        "y_pred": estimate,
        "sensitive_features": labels[codes],
    }
    rows = np.column_stack([codes.astype(np.float64), np.asarray(truth, np.float64), np.asarray(estimate, np.float64)])
    # A sample tells cheaply whether collapsing pays (held-out ratings against continuous
    # predictions do not repeat); either way the figures are the same.
    probe = rows[np.random.default_rng(0).choice(len(rows), min(len(rows), 20_000), replace=False)]
    if len(np.unique(probe, axis=0)) * 2 > len(probe):
        return arguments
    distinct, counts = np.unique(rows, axis=0, return_counts=True)
    if len(distinct) * 2 > len(rows) or len(distinct) < 2:  # Fairlearn cannot take a single row
        return arguments
    weights = counts.astype(np.float64)
    return {
        **arguments,
        "y_true": distinct[:, 1],
        "y_pred": distinct[:, 2],
        "sensitive_features": labels[distinct[:, 0].astype(np.int64)],
        "sample_params": {name: {"sample_weight": weights} for name in functions},
    }


def _bootstrap(
    functions: dict[str, RowMetric],
    truth: np.ndarray,
    estimate: np.ndarray,
    codes: np.ndarray,
    count: int,
    *,
    n_boot: int,
    seed: int,
    max_rows: int,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per metric: the groups' figures in each resample (n_boot x groups), everyone's (n_boot),
    and the figures of the rows resampled (groups, then everyone; the figures themselves unless
    the rows were sampled)."""
    rows = np.arange(len(truth))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    # Its own stream: a sample's resamples are those of the same rows given alone.
    rng = np.random.default_rng([seed, 1])
    codes = codes[rows]
    parts = {
        name: tuple(np.asarray(part, np.float64) for part in metric.parts(truth[rows], estimate[rows]))
        for name, metric in functions.items()
    }

    def figures(name: str, weights: np.ndarray | float) -> tuple[np.ndarray, Any]:
        """Each group's figure and everyone's, with each row counted ``weights`` times."""
        numerator, denominator = parts[name]
        top = np.bincount(codes, weights=weights * numerator, minlength=count)
        bottom = np.bincount(codes, weights=weights * denominator, minlength=count)
        finish = functions[name].finish
        return (
            finish(np.where(bottom > 0, top / bottom, np.nan)),
            finish(top.sum() / bottom.sum()) if bottom.sum() > 0 else np.nan,
        )

    per_group = {name: np.full((n_boot, count), np.nan) for name in functions}
    everyone = {name: np.full(n_boot, np.nan) for name in functions}
    centres = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for resample in range(n_boot):
            weights = np.bincount(rng.integers(0, len(rows), len(rows)), minlength=len(rows)).astype(np.float64)
            for name in functions:
                per_group[name][resample], everyone[name][resample] = figures(name, weights)
        for name in functions:
            groups, overall = figures(name, 1.0)
            centres[name] = np.append(groups, overall)
    return {name: (per_group[name], everyone[name], centres[name]) for name in functions}


def _interval(
    resamples: np.ndarray, quantiles: tuple[float, float], value: float | None, centre: float
) -> tuple[float | None, float | None]:
    """The percentile interval of ``resamples``, moved from the resampled rows' own figure
    ``centre`` to ``value`` (no move when they are the same rows)."""
    finite = resamples[np.isfinite(resamples)]
    if not len(finite):
        return None, None
    low, high = (float(bound) for bound in np.quantile(finite, quantiles))
    if value is None or not math.isfinite(centre):
        return low, high
    return value - (centre - low), value + (high - centre)


def grouped_metric(
    metric: RowMetric, truth: np.ndarray, estimate: np.ndarray, groups: np.ndarray, **options: Any
) -> GroupedMetric:
    """One metric per group: ``grouped_metrics`` of one metric."""
    return grouped_metrics({"metric": metric}, truth, estimate, groups, **options)["metric"]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Disparity:
    """How far apart the groups are on one metric, over the groups large enough to compare, and
    how sure that is: intervals of the difference and of the ratio between the best and the worst
    group, from the same bootstrap resamples as the groups' own intervals, at ``confidence``
    (corrected for the number of comparisons a report makes, so that a flag raised only where an
    interval excludes its bound is a false alarm no more often than the report says)."""

    best: str | None
    worst: str | None
    difference: float | None  # how much better best is than worst, in the metric's units
    ratio: float | None  # worst / best for a higher-is-better metric, best / worst for an error
    mad: float | None  # mean absolute difference between every two groups
    difference_low: float | None = None
    difference_high: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None
    confidence: float | None = None
    why_not: str = ""  # why no two groups were compared

    def ratio_below(self, bound: float) -> bool:
        """Is the ratio below ``bound``, beyond doubt where there is an interval?"""
        if self.ratio is None:
            return False
        return (self.ratio_high if self.ratio_high is not None else self.ratio) < bound

    def interval_text(self, of: str) -> str:
        """How a flag states the interval of the ``ratio`` (as percentages) or the ``difference``."""
        low, high = (self.ratio_low, self.ratio_high) if of == "ratio" else (self.difference_low, self.difference_high)
        if low is None or high is None or self.confidence is None:
            return "no interval"
        if of == "ratio":
            return f"{self.confidence:.2%} interval {low:.0%} to {high:.0%}"
        return f"{self.confidence:.2%} interval {low:.3f} to {high:.3f}"

    def difference_above(self, bound: float) -> bool:
        """Is the difference above ``bound``, beyond doubt where there is an interval?"""
        if self.difference is None:
            return False
        return (self.difference_low if self.difference_low is not None else self.difference) > bound


def pairs(groups: int) -> int:
    """How many two-group comparisons ``groups`` groups make."""
    return groups * (groups - 1) // 2


def corrected_confidence(alpha: float, comparisons: int) -> float:
    """Bonferroni's level for each of ``comparisons`` intervals, so that the chance of any of them
    excluding a bound that holds is at most ``alpha``. The worst and best group are the pair
    furthest apart, chosen after looking, so a report counts every pair it could have chosen."""
    return 1.0 - alpha / max(comparisons, 1)


def disparity(
    values: dict[str, float | None],
    *,
    higher_is_better: bool,
    resamples: Mapping[str, np.ndarray] | None = None,
    confidence: float = 0.95,
) -> Disparity:
    """The gap between the best and the worst of ``values``; with ``resamples`` (each group's
    figure in every bootstrap resample), intervals of the difference and of the ratio at
    ``confidence``, from the resamples' spread (normal, on the log scale for a ratio): a
    percentile interval at a corrected level would need far more resamples than are drawn."""
    compared = {group: value for group, value in values.items() if value is not None and math.isfinite(value)}
    if len(compared) < 2:
        return Disparity(None, None, None, None, None, why_not="fewer than two groups large enough to compare")
    order = sorted(compared, key=lambda group: compared[group], reverse=higher_is_better)
    best, worst = order[0], order[-1]
    high, low = max(compared[best], compared[worst]), min(compared[best], compared[worst])
    if high == 0:
        return Disparity(None, None, None, None, None, why_not="every group compared is at 0")
    difference = abs(compared[best] - compared[worst])
    ratio = low / high
    intervals: dict[str, float | None] = {}
    if resamples is not None and best in resamples and worst in resamples:
        intervals = _gap_intervals(
            resamples[best],
            resamples[worst],
            difference,
            ratio,
            higher_is_better=higher_is_better,
            confidence=confidence,
        )
    return Disparity(
        best=best,
        worst=worst,
        difference=difference,
        ratio=ratio,
        mad=mean_absolute_deviation(list(compared.values())),
        difference_low=intervals.get("difference_low"),
        difference_high=intervals.get("difference_high"),
        ratio_low=intervals.get("ratio_low"),
        ratio_high=intervals.get("ratio_high"),
        confidence=confidence if intervals else None,
    )


def _gap_intervals(
    best: np.ndarray, worst: np.ndarray, difference: float, ratio: float, *, higher_is_better: bool, confidence: float
) -> dict[str, float | None]:
    both = np.isfinite(best) & np.isfinite(worst)
    best, worst = best[both], worst[both]
    if len(best) < 2:
        return {}
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    gaps = best - worst if higher_is_better else worst - best
    spread = float(np.std(gaps, ddof=1))
    result: dict[str, float | None] = {
        "difference_low": difference - z * spread,
        "difference_high": difference + z * spread,
    }
    top, bottom = (best, worst) if higher_is_better else (worst, best)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = bottom / top
    ratios = ratios[np.isfinite(ratios)]
    if len(ratios) < 2:
        return {**result, "ratio_low": None, "ratio_high": None}
    if ratio > 0 and (ratios > 0).all():
        spread = float(np.std(np.log(ratios), ddof=1))
        result.update(ratio_low=ratio * math.exp(-z * spread), ratio_high=ratio * math.exp(z * spread))
    else:
        spread = float(np.std(ratios, ddof=1))
        result.update(ratio_low=max(ratio - z * spread, 0.0), ratio_high=ratio + z * spread)
    return result
