"""Training and measuring both models on one data set: ``train_and_evaluate``.

Two fits of each model, as the field does it:

1. **Measure the procedure.** Split each viewer's interactions, fit on the training part, and
   measure on the held-out part. These figures describe the procedure (algorithm, parameters,
   data) and are what the gate compares, version against version, measured the same way.
2. **Refit for serving.** Fit the same procedure on all the data and serve that. A model that
   never saw a quarter of each viewer's history recommends worse (on MovieLens-100K through
   the HTTP API, NDCG@10 0.336 against 0.48); the refit's own time and size are recorded.

Evaluation runs over viewers in batches, on at most ``evaluation_viewers`` viewers (a fixed
sample, chosen by the seed and stated in the metrics, when there are more).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.learning.evaluation import (
    RANK_CUTOFFS,
    PerViewer,
    group_metrics,
    ranking_per_viewer,
    rating_errors,
)
from recommender.learning.ranking import Index, RankerModel, batches, ranker_named, top_for_rows
from recommender.learning.rating import SVD_TUNE_GRID, rating_algorithm_named, surprise_trainset, tune_svd
from recommender.learning.splitting import Interactions, split_by_viewer


@dataclass
class TrainedModels:
    """What a training run produced: the refitted models that serve, the index and every figure."""

    index: Index
    ranker: str
    ranker_params: dict[str, Any]  # the parameters the ranker was fitted with
    ranker_model: RankerModel  # fitted on all the data
    seen: sp.csr_matrix  # all the data, viewers by movies
    ratings: sp.csr_matrix  # the current scores, viewers by movies (0: not rated)
    rating_algorithm: str
    rating_params: dict[str, Any]  # the parameters the rating model was fitted with
    rating: Any  # a fitted scikit-surprise AlgoBase, fitted on all the data
    trainset: Any  # its trainset: raw ids are viewer ids and movie columns
    metrics: dict[str, Any]
    group_metrics: dict[str, dict[str, dict[str, float]]]
    top: np.ndarray  # precomputed top-N per viewer (row order of index.viewers)
    # The held-out evaluation per rating and per viewer, kept so that figures per group (the
    # fairness report) are computed from the same measurement: EVALUATION_ARRAYS.
    evaluation: dict[str, np.ndarray] = field(default_factory=dict)


EVALUATION_ARRAYS = (
    "rating_viewers",  # the viewer of each held-out rating
    "rating_estimates",
    "rating_truths",
    "ranking_viewers",  # each evaluated viewer (held-out items, in the sample)
    "ndcg@10",
    "recall@10",
)


def train_and_evaluate(
    *,
    interactions: Interactions,
    demographics: dict[int, tuple[int | None, str, str]],
    rating_algorithm: str = "svd",
    rating_params: dict[str, Any] | None = None,
    ranker: str = "ease",
    ranker_params: dict[str, Any] | None = None,
    seed: int = 42,
    tune: bool = False,
    top_count: int = 100,
    evaluation_viewers: int = 50_000,
    progress: Callable[[str], None] = lambda step: None,
) -> TrainedModels:
    """Measure on a held-out split, then refit on everything (see the module's docstring).

    ``rating_params`` and ``ranker_params`` override the registered defaults; the result holds
    the parameters used.
    """
    rating_spec, ranker_spec = rating_algorithm_named(rating_algorithm), ranker_named(ranker)
    split = split_by_viewer(interactions, seed=seed)
    metrics: dict[str, Any] = {"split": split.describe()}
    index = Index.of(interactions)

    progress("rating model (held-out)")
    rating_params = rating_spec.parameters(rating_params)
    if tune and rating_spec.with_svd is not None:
        best, cv_rmse = tune_svd(list(split.train.ratings()), seed=seed)
        rating_params = rating_spec.with_svd(rating_params, best)
        metrics["tuning"] = {"grid": SVD_TUNE_GRID, "best": best, "cv_rmse": round(cv_rmse, 5)}
    started = time.perf_counter()
    rating = rating_spec.build(rating_params, seed).fit(surprise_trainset(split.train.ratings()))
    metrics["rating_fit_seconds"] = round(time.perf_counter() - started, 3)
    test_rated = split.test.rated
    estimates = np.array(
        [rating.predict(viewer, movie).est for viewer, movie, _ in split.test.ratings()], dtype=np.float64
    )
    truths = split.test.scores[test_rated].astype(np.float64)
    metrics.update(rating_errors(estimates, truths))

    progress("ranker (held-out)")
    x = index.matrix(split.train)
    ranker_params = ranker_spec.parameters(ranker_params)
    started = time.perf_counter()
    measured_model = ranker_spec.fit(x, **ranker_params)
    metrics["ranker_fit_seconds"] = round(time.perf_counter() - started, 3)

    progress("evaluation")
    held_out = index.matrix(split.test)
    rows = np.flatnonzero(np.diff(held_out.indptr) > 0)
    if len(rows) > evaluation_viewers:
        rows = np.sort(np.random.default_rng(seed).choice(rows, evaluation_viewers, replace=False))
        metrics["evaluation_sample"] = {"viewers": evaluation_viewers, "seed": seed}
    started = time.perf_counter()
    ranking = _per_viewer(measured_model, x, held_out, rows)
    metrics.update(ranking.mean())
    metrics["popularity"] = _per_viewer(ranker_named("popularity").fit(x), x, held_out, rows).mean()
    metrics["evaluation_seconds"] = round(time.perf_counter() - started, 3)
    metrics["catalogue"] = len(index.movies)
    metrics["viewers"] = len(index.viewers)
    per_group = group_metrics(
        rated_viewers=split.test.viewers[test_rated],
        estimates=estimates,
        truths=truths,
        ranking=ranking,
        viewers=index.viewers,
        demographics=demographics,
    )
    evaluation: dict[str, np.ndarray] = {
        "rating_viewers": split.test.viewers[test_rated].astype(np.int64),
        "rating_estimates": estimates.astype(np.float32),
        "rating_truths": truths.astype(np.float32),
        "ranking_viewers": index.viewers[ranking.rows].astype(np.int64),
        **{
            name: ranking.figures[name].astype(np.float32)
            for name in ("ndcg@10", "recall@10")
            if name in ranking.figures
        },
    }
    del measured_model, x, held_out

    progress("refit on all the data")
    refit: dict[str, Any] = {}
    started = time.perf_counter()
    trainset = surprise_trainset(interactions.ratings())
    rating = rating_spec.build(rating_params, seed).fit(trainset)
    refit["rating_fit_seconds"] = round(time.perf_counter() - started, 3)
    seen = index.matrix(interactions)
    rated = interactions.rated
    ratings = sp.csr_matrix(
        (interactions.scores[rated], (index.rows(interactions.viewers[rated]), interactions.movies[rated])),
        shape=seen.shape,
    )
    started = time.perf_counter()
    ranker_model = ranker_spec.fit(seen, **ranker_params)
    refit["ranker_fit_seconds"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    top = top_for_rows(ranker_model, seen, np.arange(len(index.viewers)), top_count)
    refit["top_seconds"] = round(time.perf_counter() - started, 3)
    refit["interactions"], refit["ratings"] = len(interactions), interactions.rating_count()
    metrics["refit"] = refit
    listed = np.unique(top[:, :20])
    metrics["coverage@20"] = round(int((listed >= 0).sum()) / max(len(index.movies), 1), 5)
    return TrainedModels(
        index=index,
        ranker=ranker,
        ranker_params=ranker_params,
        ranker_model=ranker_model,
        seen=seen,
        ratings=ratings,
        rating_algorithm=rating_algorithm,
        rating_params=rating_params,
        rating=rating,
        trainset=trainset,
        metrics=metrics,
        group_metrics=per_group,
        top=top,
        evaluation=evaluation,
    )


def _per_viewer(model: RankerModel, x: sp.csr_matrix, held_out: sp.csr_matrix, rows: np.ndarray) -> PerViewer:
    parts = []
    width = max(RANK_CUTOFFS)
    for batch in batches(rows):
        parts.append(ranking_per_viewer(model.top_rows(x, batch, width), held_out[batch], batch))
    return PerViewer.concatenate(parts)
