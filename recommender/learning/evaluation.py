"""Measuring a trained ranker and rating model on the held-out split, overall and per group."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from catalog.demographics import age_bucket
from recommender.learning.ranking import Index

RANK_CUTOFFS = (10, 20)


def ranking_metrics(
    top: np.ndarray, relevant: list[set[int]], *, cutoffs: tuple[int, ...] = RANK_CUTOFFS
) -> dict[str, float]:
    """Precision, recall and NDCG at each cutoff, averaged over viewers with held-out items.

    Binary relevance; the ideal DCG counts min(k, relevant) hits, as Microsoft Recommenders does.
    """
    totals: dict[str, float] = defaultdict(float)
    counted = 0
    discounts = 1.0 / np.log2(np.arange(2, max(cutoffs) + 2))
    for row, items in zip(top, relevant, strict=True):
        if not items:
            continue
        counted += 1
        hits = np.array([item in items for item in row[: max(cutoffs)]], dtype=np.float64)
        for k in cutoffs:
            found = hits[:k].sum()
            totals[f"precision@{k}"] += found / k
            totals[f"recall@{k}"] += found / len(items)
            ideal = discounts[: min(k, len(items))].sum()
            ranked = hits[:k]  # shorter than k when the catalogue is
            totals[f"ndcg@{k}"] += float((ranked * discounts[: len(ranked)]).sum() / ideal)
    return {name: round(float(value) / counted, 5) for name, value in totals.items()} if counted else {}


def rating_errors(pairs: list[tuple[float, float]]) -> dict[str, float]:
    if not pairs:
        return {}
    errors = np.array([estimate - truth for estimate, truth in pairs])
    return {"rmse": round(float(np.sqrt(np.mean(errors**2))), 5), "mae": round(float(np.mean(np.abs(errors))), 5)}


def group_metrics(
    *,
    predictions: list[tuple[int, float, float]],
    top: np.ndarray,
    relevant: list[set[int]],
    index: Index,
    demographics: dict[int, tuple[int | None, str, str]],
) -> dict[str, dict[str, dict[str, float]]]:
    """RMSE, MAE and NDCG@10 per gender, age bucket and occupation (for the fairness work)."""

    def groups_of(viewer: int) -> dict[str, str]:
        age, gender, occupation = demographics.get(viewer, (None, "", ""))
        return {"gender": gender or "unknown", "age": age_bucket(age), "occupation": occupation or "unknown"}

    errors: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for viewer, estimate, truth in predictions:
        for dimension, group in groups_of(viewer).items():
            errors[(dimension, group)].append((estimate, truth))
    rows: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row, viewer in enumerate(index.viewers):
        if relevant[row]:
            for dimension, group in groups_of(viewer).items():
                rows[(dimension, group)].append(row)

    result: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for key in sorted(set(errors) | set(rows)):
        dimension, group = key
        figures: dict[str, float] = {"ratings": len(errors.get(key, [])), "viewers": len(rows.get(key, []))}
        figures.update(rating_errors(errors.get(key, [])))
        if rows.get(key):
            ranked = ranking_metrics(top[rows[key]], [relevant[row] for row in rows[key]], cutoffs=(10,))
            figures["ndcg@10"] = ranked.get("ndcg@10", math.nan)
        result[dimension][group] = figures
    return dict(result)
