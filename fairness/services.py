"""Computing and storing a model version's fairness report.

The team recsite grows from defined fairness as outcome-oriented, group-based and consistent:
similar groups of people should get recommendations of similar quality. The report compares,
for gender, age bracket and occupation and the intersections gender x age and gender x
occupation:

- **quality** on the held-out data: RMSE and MAE per rating, NDCG@10 and recall@10 per viewer,
  each with a bootstrap interval (Fairlearn's ``MetricFrame``), and the disparity between the
  groups large enough to compare (best, worst, difference, ratio, mean absolute deviation);
- **representation**: each group's share of viewers, ratings and watches;
- **diversity and exposure**: the genre entropy of what each group is recommended (the top 10
  of the version's lists) against what it watched, the genre diversity within a list, the
  popularity of what is recommended; over the catalogue, coverage, the Gini coefficient of
  exposure and the movies never recommended.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from catalog.demographics import DIMENSIONS, demographic_groups
from catalog.models import Movie, Rating, Viewer, Watch
from core.notifications import notification_send
from core.replica import replica_reads
from fairness import metrics
from fairness.models import FairnessReport
from recommender.artifacts import Artifact, artifact_load
from recommender.models import ModelVersion

logger = logging.getLogger(__name__)

TOP_K = 10
# metric -> (computed per rating or per viewer, higher is better)
QUALITY: dict[str, tuple[str, bool]] = {
    "rmse": ("rating", False),
    "mae": ("rating", False),
    "ndcg@10": ("viewer", True),
    "recall@10": ("viewer", True),
}


class FairnessError(Exception):
    """A version whose report cannot be computed; the message says why."""


@replica_reads()
def fairness_report_create(
    *, version: ModelVersion, bootstrap: int | None = None, seed: int = 0, min_group: int | None = None
) -> FairnessReport:
    """Compute ``version``'s report, store it, and notify people of disparities past the bounds."""
    started = time.perf_counter()
    bootstrap = settings.FAIRNESS_BOOTSTRAP if bootstrap is None else bootstrap
    min_group = settings.FAIRNESS_MIN_GROUP_VIEWERS if min_group is None else min_group
    if not version.artifact_path:
        raise FairnessError(f"v{version.version} has no artifact ({version.status})")
    artifact = artifact_load(version.artifact_file, sha256=version.artifact_sha256)
    evaluation = artifact.evaluation()
    if not evaluation:
        raise FairnessError(
            f"v{version.version}'s artifact keeps no per-viewer evaluation (trained before it was kept): retrain"
        )
    groups = group_table_load()
    figures: dict[str, Any] = {
        "quality": _quality(evaluation, groups, bootstrap=bootstrap, seed=seed, min_group=min_group),
        "representation": _representation(),
        "diversity": _diversity(artifact, groups, min_group=min_group),
        "viewers_evaluated": len(evaluation["ranking_viewers"]),
        "ratings_evaluated": len(evaluation["rating_viewers"]),
    }
    report = FairnessReport.objects.create(
        model_version=version,
        created_at=timezone.now(),
        bootstrap=bootstrap,
        seed=seed,
        min_group_viewers=min_group,
        figures=figures,
        flags=_flags(figures["quality"]),
        seconds=round(time.perf_counter() - started, 3),
    )
    if report.flags:
        notification_send(
            subject=f"fairness: v{version.version} has {len(report.flags)} disparities past the bounds",
            body="\n".join(report.flags),
        )
    logger.info("%s: %d flags in %.1fs", report, len(report.flags), report.seconds)
    return report


@dataclass(frozen=True)
class GroupTable:
    """Every known viewer's group in each dimension, as arrays: the groups are worked out once
    per distinct (gender, age, occupation), a few hundred, not once per viewer, a million."""

    ids: np.ndarray  # viewer ids, ascending
    codes: np.ndarray  # per viewer: its row in ``labels``; the last row is "unknown"
    labels: dict[str, np.ndarray]

    def of(self, viewers: np.ndarray, dimension: str) -> np.ndarray:
        """The groups of ``viewers`` in ``dimension`` (unknown for ids the catalogue has not seen)."""
        labels: np.ndarray = self.labels[dimension][self.combinations_of(viewers)]
        return labels

    def combinations_of(self, viewers: np.ndarray) -> np.ndarray:
        """Each viewer's row in ``labels`` (its gender, age and occupation together; the last row
        for ids the catalogue has not seen): looked up once, then a row per dimension."""
        unknown = len(next(iter(self.labels.values()))) - 1
        if not len(self.ids):
            return np.full(len(viewers), unknown, dtype=np.int64)
        found = np.minimum(np.searchsorted(self.ids, viewers), len(self.ids) - 1)
        return np.where(self.ids[found] == viewers, self.codes[found], unknown)


def group_table_load() -> GroupTable:
    combos: dict[tuple[str, int | None, str], int] = {}
    ids: list[int] = []
    codes: list[int] = []
    for viewer, gender, age, occupation in (
        Viewer.objects.order_by("id").values_list("id", "gender", "age", "occupation").iterator(chunk_size=50_000)
    ):
        ids.append(viewer)
        codes.append(combos.setdefault((gender, age, occupation), len(combos)))
    groups = [demographic_groups(*combo) for combo in combos] + [demographic_groups("", None, "")]
    return GroupTable(
        ids=np.array(ids, dtype=np.int64),
        codes=np.array(codes, dtype=np.int64),
        labels={dimension: np.array([row[dimension] for row in groups], dtype=object) for dimension in DIMENSIONS},
    )


# The disparities a flag is raised on; their intervals are corrected for every pair of groups
# each of them compares.
FLAGGED = ("ndcg@10", "rmse")


def _quality(
    evaluation: dict[str, np.ndarray],
    groups: GroupTable,
    *,
    bootstrap: int,
    seed: int,
    min_group: int,
) -> dict[str, Any]:
    rating_viewers, ranking_viewers = evaluation["rating_viewers"], evaluation["ranking_viewers"]
    result: dict[str, Any] = {"overall": {}, "dimensions": {}}
    measured: dict[str, dict[str, metrics.GroupedMetric]] = {}
    compared: dict[str, list[str]] = {}
    for dimension in DIMENSIONS:
        # Group sizes count viewers: the evaluated viewers, and those behind the ratings.
        sizes = _viewer_counts(np.concatenate([ranking_viewers, rating_viewers]), groups, dimension)
        # One bootstrap per kind of row: ratings (RMSE, MAE), viewers (NDCG@10 and recall@10,
        # the second carried as the "estimate").
        measured[dimension] = {
            **metrics.grouped_metrics(
                {"rmse": metrics.RMSE, "mae": metrics.MAE},
                evaluation["rating_truths"],
                evaluation["rating_estimates"],
                groups.of(rating_viewers, dimension),
                n_boot=bootstrap,
                seed=seed,
            ),
            **metrics.grouped_metrics(
                {"ndcg@10": metrics.MEAN_OF_TRUTH, "recall@10": metrics.MEAN_OF_ESTIMATE},
                evaluation["ndcg@10"],
                evaluation["recall@10"],
                groups.of(ranking_viewers, dimension),
                n_boot=bootstrap,
                seed=seed,
            ),
        }
        per_group: dict[str, dict[str, Any]] = defaultdict(dict)
        for name, grouped in measured[dimension].items():
            unit = QUALITY[name][0]
            result["overall"][name] = grouped.overall.rounded()
            for group, figure in grouped.groups.items():
                per_group[group][name] = figure.rounded()
                per_group[group][f"{unit}s"] = grouped.sizes[group]
        for group, row in per_group.items():
            row["viewers"] = sizes.get(group, 0)
            row["small"] = sizes.get(group, 0) < min_group
        compared[dimension] = [group for group, row in per_group.items() if not row["small"]]
        result["dimensions"][dimension] = {"groups": dict(sorted(per_group.items()))}
    comparisons = len(FLAGGED) * sum(metrics.pairs(len(names)) for names in compared.values())
    confidence = metrics.corrected_confidence(settings.FAIRNESS_ALPHA, comparisons)
    result["comparisons"] = comparisons
    result["alpha"] = settings.FAIRNESS_ALPHA
    result["confidence"] = round(confidence, 6)
    for dimension, grouped_metrics in measured.items():
        result["dimensions"][dimension]["disparity"] = {
            name: metrics.disparity(
                {group: grouped.groups[group].value for group in compared[dimension] if group in grouped.groups},
                higher_is_better=QUALITY[name][1],
                resamples=grouped.resamples,
                confidence=confidence,
            ).__dict__
            for name, grouped in grouped_metrics.items()
        }
    return result


def _viewer_counts(viewers: np.ndarray, groups: GroupTable, dimension: str) -> dict[str, int]:
    distinct = np.unique(viewers)
    labels, counts = np.unique(groups.of(distinct, dimension).astype(str), return_counts=True)
    return {str(label): int(count) for label, count in zip(labels, counts, strict=True)}


def _round(value: float | None, digits: int = 5) -> float | None:
    return None if value is None else round(value, digits)


def _representation() -> dict[str, dict[str, dict[str, float]]]:
    """Each group's share of viewers, of ratings and of watches (counted in the database by
    the viewers' attributes, then folded into the report's groups)."""
    tables = {
        "viewers": Viewer.objects.values_list("gender", "age", "occupation").annotate(n=Count("id")),
        "ratings": Rating.objects.values_list("viewer__gender", "viewer__age", "viewer__occupation").annotate(
            n=Count("id")
        ),
        "watches": Watch.objects.values_list("viewer__gender", "viewer__age", "viewer__occupation").annotate(
            n=Count("id")
        ),
    }
    result: dict[str, dict[str, dict[str, float]]] = {dimension: defaultdict(dict) for dimension in DIMENSIONS}
    for what, rows in tables.items():
        counts: dict[str, dict[str, int]] = {dimension: defaultdict(int) for dimension in DIMENSIONS}
        total = 0
        for gender, age, occupation, count in rows.order_by():
            total += count
            for dimension, group in demographic_groups(gender, age, occupation).items():
                counts[dimension][group] += count
        for dimension in DIMENSIONS:
            for group, count in counts[dimension].items():
                result[dimension][group][what] = round(count / total, 5) if total else 0.0
    return {dimension: dict(sorted(groups.items())) for dimension, groups in result.items()}


def _diversity(artifact: Artifact, groups: GroupTable, *, min_group: int) -> dict[str, Any]:
    """Genre variety and popularity of what each group is recommended (the top 10 of the
    version's lists), against what it watched; exposure over the catalogue."""
    slugs = [str(slug) for slug in artifact["movies"]]
    genres_of = dict(Movie.objects.filter(slug__in=slugs).values_list("slug", "genres"))
    genre_names = sorted({genre for genres in genres_of.values() for genre in genres})
    genre_column = {genre: i for i, genre in enumerate(genre_names)}
    pairs = [(m, genre_column[g]) for m, slug in enumerate(slugs) for g in genres_of.get(slug, [])]
    movie_genres = sp.csr_matrix(
        (np.ones(len(pairs), np.float32), ([m for m, _ in pairs], [g for _, g in pairs])),
        shape=(len(slugs), len(genre_names)),
    )
    viewers = np.asarray(artifact["viewers"])
    top = np.asarray(artifact["top"])[:, :TOP_K]
    listed = top >= 0
    recommended = sp.csr_matrix(
        (np.ones(int(listed.sum()), np.float32), (np.nonzero(listed)[0], top[listed])),
        shape=(len(viewers), len(slugs)),
    )
    seen = sp.csr_matrix(
        (
            np.ones(len(artifact["seen_indices"]), np.float32),
            np.asarray(artifact["seen_indices"]),
            np.asarray(artifact["seen_indptr"]),
        ),
        shape=(len(viewers), len(slugs)),
    )
    popularity = np.asarray(seen.sum(axis=0)).ravel() / max(len(viewers), 1)
    exposure = np.asarray(recommended.sum(axis=0)).ravel()
    per_viewer_popularity = np.where(
        listed.any(axis=1),
        np.where(listed, popularity[np.maximum(top, 0)], 0).sum(axis=1) / np.maximum(listed.sum(axis=1), 1),
        np.nan,
    )
    per_viewer_diversity = metrics.list_diversities(top, movie_genres)
    result: dict[str, Any] = {
        **metrics.exposure_summary(exposure, popularity, slugs),
        "mean_popularity": _round(float(np.nanmean(per_viewer_popularity)) if len(viewers) else None),
        "genres": genre_names,
        "groups": {},
    }
    recommended_genres = recommended @ movie_genres
    watched_genres = seen @ movie_genres
    for dimension in DIMENSIONS:
        labels = groups.of(viewers, dimension).astype(str)
        rows: dict[str, Any] = {}
        for group in sorted(set(labels.tolist())):
            members = labels == group
            recommended_counts = np.asarray(recommended_genres[members].sum(axis=0)).ravel()
            watched_counts = np.asarray(watched_genres[members].sum(axis=0)).ravel()
            size = int(members.sum())
            rows[group] = {
                "viewers": size,
                "small": size < min_group,
                "recommended_entropy": round(metrics.entropy(recommended_counts), 4),
                "watched_entropy": round(metrics.entropy(watched_counts), 4),
                "intra_list_diversity": _round(_nanmean(per_viewer_diversity[members]), 4),
                "popularity": _round(_nanmean(per_viewer_popularity[members]), 5),
            }
        result["groups"][dimension] = rows
    return result


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def _flags(quality: dict[str, Any]) -> list[str]:
    """A flag where a disparity's interval lies wholly past its bound (its point figure, when the
    report was computed without a bootstrap)."""
    flags = []
    for dimension, section in quality["dimensions"].items():
        ndcg = metrics.Disparity(**section["disparity"]["ndcg@10"])
        if ndcg.ratio_below(settings.FAIRNESS_MIN_NDCG_RATIO):
            flags.append(
                f"{dimension}: NDCG@10 of {ndcg.worst} is {ndcg.ratio:.0%} of {ndcg.best}'s "
                f"({ndcg.interval_text('ratio')}; bound {settings.FAIRNESS_MIN_NDCG_RATIO:.0%})"
            )
        rmse = metrics.Disparity(**section["disparity"]["rmse"])
        if rmse.difference_above(settings.FAIRNESS_MAX_RMSE_GAP):
            flags.append(
                f"{dimension}: RMSE of {rmse.worst} is {rmse.difference:.3f} above {rmse.best}'s "
                f"({rmse.interval_text('difference')}; bound {settings.FAIRNESS_MAX_RMSE_GAP})"
            )
    return flags
