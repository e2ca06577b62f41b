"""Training and measuring both models on one data set: ``train_and_evaluate``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.learning.evaluation import RANK_CUTOFFS, group_metrics, ranking_metrics, rating_errors
from recommender.learning.ranking import Index, ranker_named, top_n
from recommender.learning.rating import SVD_TUNE_GRID, rating_algorithm_named, surprise_trainset, tune_svd
from recommender.learning.splitting import Interaction, split_by_viewer


@dataclass
class TrainedModels:
    """What a training run produced: both models, the index and every figure."""

    index: Index
    ranker: str
    ranker_params: dict[str, Any]  # the parameters the ranker was fitted with
    weights: np.ndarray | None
    seen: np.ndarray
    rating_algorithm: str
    rating_params: dict[str, Any]  # the parameters the rating model was fitted with
    rating: Any  # a fitted scikit-surprise AlgoBase
    trainset: Any
    metrics: dict[str, Any]
    group_metrics: dict[str, dict[str, dict[str, float]]]
    top: np.ndarray  # precomputed top-N per viewer (row order of index.viewers)
    relevant: list[set[int]]  # held-out movie columns per viewer row


def train_and_evaluate(
    *,
    interactions: list[Interaction],
    demographics: dict[int, tuple[int | None, str, str]],
    catalogue: list[str],
    rating_algorithm: str = "svd",
    rating_params: dict[str, Any] | None = None,
    ranker: str = "ease",
    ranker_params: dict[str, Any] | None = None,
    seed: int = 42,
    tune: bool = False,
    top_count: int = 100,
    progress: Callable[[str], None] = lambda step: None,
) -> TrainedModels:
    """Split, train both models on the training part, measure them on the held-out part.

    The served models are the ones measured (trained on the training split), so the metrics
    stored with a version describe exactly the artifact that serves. ``rating_params`` and
    ``ranker_params`` override the registered defaults; the result holds the parameters used.
    """
    rating_spec, ranker_spec = rating_algorithm_named(rating_algorithm), ranker_named(ranker)
    split = split_by_viewer(interactions, seed=seed)
    metrics: dict[str, Any] = {"split": split.describe()}

    progress("rating model")
    rating_params = rating_spec.parameters(rating_params)
    if tune and rating_spec.with_svd is not None:
        best, cv_rmse = tune_svd(split.train_ratings, seed=seed)
        rating_params = rating_spec.with_svd(rating_params, best)
        metrics["tuning"] = {"grid": SVD_TUNE_GRID, "best": best, "cv_rmse": round(cv_rmse, 5)}
    started = time.perf_counter()
    trainset = surprise_trainset(split.train_ratings)
    rating = rating_spec.build(rating_params, seed).fit(trainset)
    metrics["rating_fit_seconds"] = round(time.perf_counter() - started, 3)
    predictions = rating.test([(v, m, float(s)) for v, m, s in split.test_ratings])
    estimates = [(p.est, p.r_ui) for p in predictions]
    metrics.update(rating_errors(estimates))

    progress("ranker")
    viewers = sorted({i.viewer for i in split.train})
    index = Index(viewers=viewers, movies=sorted(set(catalogue) | {i.movie for i in interactions}))
    x = index.matrix(split.train)
    ranker_params = ranker_spec.parameters(ranker_params)
    started = time.perf_counter()
    weights = ranker_spec.fit(x, **ranker_params)
    metrics["ranker_fit_seconds"] = round(time.perf_counter() - started, 3)

    progress("evaluation")
    relevant: list[set[int]] = [set() for _ in viewers]
    for interaction in split.test:
        row = index.viewer_index.get(interaction.viewer)
        if row is not None:
            relevant[row].add(index.movie_index[interaction.movie])
    top = top_n(ranker_spec.score(x, weights), x, max(top_count, max(RANK_CUTOFFS)))
    metrics.update(ranking_metrics(top, relevant))
    popular_top = top_n(ranker_named("popularity").score(x, None), x, max(RANK_CUTOFFS))
    metrics["popularity"] = ranking_metrics(popular_top, relevant)
    metrics["coverage@20"] = round(len(np.unique(top[:, :20])) / len(index.movies), 5)
    metrics["catalogue"] = len(index.movies)
    metrics["viewers"] = len(viewers)

    per_group = group_metrics(
        predictions=[(p.uid, p.est, p.r_ui) for p in predictions],
        top=top,
        relevant=relevant,
        index=index,
        demographics=demographics,
    )
    return TrainedModels(
        index=index,
        ranker=ranker,
        ranker_params=ranker_params,
        weights=weights,
        seen=x,
        rating_algorithm=rating_algorithm,
        rating_params=rating_params,
        rating=rating,
        trainset=trainset,
        metrics=metrics,
        group_metrics=per_group,
        top=top[:, :top_count],
        relevant=relevant,
    )
