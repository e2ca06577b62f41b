"""Measuring a trained ranker and rating model on the held-out split, overall and per group.

Ranking metrics are computed per viewer (so groups can average any subset of them) from a
batch of top lists and the held-out matrix; nothing holds viewers times movies at once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from catalog.demographics import demographic_groups

RANK_CUTOFFS = (10, 20)


@dataclass
class PerViewer:
    """Each evaluated viewer's precision, recall and NDCG at each cutoff."""

    rows: np.ndarray  # the index rows they belong to
    figures: dict[str, np.ndarray]

    def mean(self, mask: np.ndarray | None = None) -> dict[str, float]:
        if (mask is not None and not mask.any()) or not len(self.rows):
            return {}
        return {name: round(float(values[mask].mean() if mask is not None else values.mean()), 5)
                for name, values in self.figures.items()}  # fmt: skip

    @classmethod
    def concatenate(cls, parts: list[PerViewer]) -> PerViewer:
        if not parts:
            return cls(rows=np.array([], dtype=np.int64), figures={})
        return cls(
            rows=np.concatenate([part.rows for part in parts]),
            figures={name: np.concatenate([part.figures[name] for part in parts]) for name in parts[0].figures},
        )


def ranking_per_viewer(
    top: np.ndarray, relevant: sp.csr_matrix, rows: np.ndarray, *, cutoffs: tuple[int, ...] = RANK_CUTOFFS
) -> PerViewer:
    """Precision, recall and NDCG at each cutoff for each row of ``top`` that has held-out items.

    ``relevant`` holds the same rows as ``top`` (binary). Binary relevance; the ideal DCG counts
    min(k, relevant) hits, as Microsoft Recommenders does.
    """
    counts = np.diff(relevant.indptr)
    measured = counts > 0
    width = min(max(cutoffs), top.shape[1])
    listed = top[measured, :width].astype(np.int64)
    hits = np.take_along_axis(relevant[measured].toarray() > 0, np.maximum(listed, 0), axis=1) & (listed >= 0)
    hits = hits.astype(np.float64)
    counts = counts[measured].astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, max(cutoffs) + 2))
    ideal_cumulative = np.cumsum(discounts)
    figures: dict[str, np.ndarray] = {}
    for k in cutoffs:
        found = hits[:, :k].sum(axis=1)
        figures[f"precision@{k}"] = found / k
        figures[f"recall@{k}"] = found / counts
        ideal = ideal_cumulative[np.minimum(counts, k).astype(np.int64) - 1]
        figures[f"ndcg@{k}"] = (hits[:, :k] * discounts[: hits[:, :k].shape[1]]).sum(axis=1) / ideal
    return PerViewer(rows=rows[measured], figures=figures)


def ranking_metrics(
    top: np.ndarray, relevant: sp.csr_matrix, *, cutoffs: tuple[int, ...] = RANK_CUTOFFS
) -> dict[str, float]:
    """Averages over the viewers with held-out items."""
    return ranking_per_viewer(top, sp.csr_matrix(relevant), np.arange(top.shape[0]), cutoffs=cutoffs).mean()


def rating_errors(estimates: np.ndarray, truths: np.ndarray) -> dict[str, float]:
    if not len(estimates):
        return {}
    errors = np.asarray(estimates, dtype=np.float64) - np.asarray(truths, dtype=np.float64)
    return {"rmse": round(float(np.sqrt(np.mean(errors**2))), 5), "mae": round(float(np.mean(np.abs(errors))), 5)}


def viewer_groups(demographics: dict[int, tuple[int | None, str, str]], viewer: int) -> dict[str, str]:
    """The viewer's group in each single dimension (the fairness report adds their intersections)."""
    age, gender, occupation = demographics.get(viewer, (None, "", ""))
    groups = demographic_groups(gender, age, occupation)
    return {dimension: groups[dimension] for dimension in ("gender", "age", "occupation")}


def group_metrics(
    *,
    rated_viewers: np.ndarray,
    estimates: np.ndarray,
    truths: np.ndarray,
    ranking: PerViewer,
    viewers: np.ndarray,
    demographics: dict[int, tuple[int | None, str, str]],
) -> dict[str, dict[str, dict[str, float]]]:
    """RMSE, MAE and NDCG@10 per gender, age bucket and occupation (for the fairness work).

    ``rated_viewers``/``estimates``/``truths``: the held-out ratings; ``ranking``: per-viewer
    figures over rows of ``viewers``."""
    labels: dict[str, dict[int, str]] = defaultdict(dict)
    for viewer in np.unique(np.concatenate([rated_viewers, viewers[ranking.rows]])).tolist():
        for dimension, group in viewer_groups(demographics, viewer).items():
            labels[dimension][viewer] = group

    result: dict[str, dict[str, dict[str, float]]] = {}
    ranked_viewers = viewers[ranking.rows]
    for dimension, of_viewer in sorted(labels.items()):
        rated_group = np.array([of_viewer[v] for v in rated_viewers.tolist()], dtype=object)
        ranked_group = np.array([of_viewer[v] for v in ranked_viewers.tolist()], dtype=object)
        result[dimension] = {}
        for group in sorted(set(of_viewer.values())):
            in_rated, in_ranked = rated_group == group, ranked_group == group
            figures: dict[str, float] = {"ratings": int(in_rated.sum()), "viewers": int(in_ranked.sum())}
            figures.update(rating_errors(estimates[in_rated], truths[in_rated]))
            if in_ranked.any():
                figures["ndcg@10"] = ranking.mean(in_ranked).get("ndcg@10", math.nan)
            result[dimension][group] = figures
    return result
