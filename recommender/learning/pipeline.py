"""Training and measuring both models on one data set: ``train_and_evaluate``, in named steps.

1. **Split** each viewer's interactions 75/25 (the held-out quarter is only ever measured on).
2. **Rating model**: fit on the training part, measured by RMSE on the held-out ratings. It is
   not refitted: the gate's RMSE is its figure, and its baselines and factors go into the
   artifact as measured (a second fit cost minutes at the platform's size and changed nothing
   served).
3. **Choose the ranker** (``selection``): candidates fitted on three quarters of the training
   part and compared on the remaining quarter, unless a ranker is forced.
4. **Measure the ranker**: the chosen one fitted on the whole training part and measured on the
   held-out split, beside popularity on the same split. These figures describe the procedure
   (algorithm, parameters, data) and are what the gate compares. When selection chose and its
   winner measures below popularity here, popularity serves instead (recorded as the
   selection's ``fallback``): a validation win smaller than chance is no reason to serve worse.
5. **Refit the ranker for serving** on all the data, and precompute every viewer's top list. A
   model that never saw a quarter of each viewer's history recommends worse (on MovieLens-100K
   through the HTTP API, NDCG@10 0.336 against 0.48).

Evaluation runs over viewers in batches, on at most ``evaluation_viewers`` viewers (a fixed
sample, chosen by the seed and stated in the metrics, when there are more). Each step's seconds
are in the metrics, under ``seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.learning.evaluation import PerViewer, group_metrics, rating_errors
from recommender.learning.ranking import RANKERS, SELECT, Index, Popularity, Ranker, ranker_named, top_for_rows
from recommender.learning.rating import (
    SVD_TUNE_GRID,
    RatingAlgorithm,
    rating_algorithm_named,
    surprise_trainset,
    tune_svd,
)
from recommender.learning.selection import Selection, measure, ranker_select
from recommender.learning.splitting import Interactions, Split, split_by_viewer


@dataclass
class TrainedModels:
    """What a training run produced: the refitted models that serve, the index and every figure."""

    index: Index
    ranker: str
    ranker_params: dict[str, Any]  # the parameters the ranker was fitted with
    ranker_model: Ranker  # fitted on all the data
    seen: sp.csr_matrix  # all the data, viewers by movies
    ratings: sp.csr_matrix  # the current scores, viewers by movies (0: not rated)
    rating_algorithm: str
    rating_params: dict[str, Any]  # the parameters the rating model was fitted with
    rating: Any  # a fitted scikit-surprise AlgoBase, fitted on the training part (as measured)
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


class Stopwatch:
    """Each step's seconds, by name: ``with watch("ranker fit"): ...``."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        self.progress(step)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = round(time.perf_counter() - started, 3)


def train_and_evaluate(
    *,
    interactions: Interactions,
    demographics: dict[int, tuple[int | None, str, str]],
    rating_algorithm: str = "svd",
    rating_params: dict[str, Any] | None = None,
    ranker: str = SELECT,
    ranker_params: dict[str, Any] | None = None,
    seed: int = 42,
    tune: bool = False,
    top_count: int = 100,
    evaluation_viewers: int = 50_000,
    selection_seconds: float = 120.0,
    selection_viewers: int = 20_000,
    progress: Callable[[str], None] = lambda step: None,
) -> TrainedModels:
    """The steps of the module's docstring. ``ranker`` is a registered name, or ``SELECT`` to
    choose by measurement; ``rating_params`` and ``ranker_params`` override the registered
    defaults (``ranker_params`` only with a named ranker); the result holds the parameters used."""
    watch = Stopwatch(progress)
    rating_spec = rating_algorithm_named(rating_algorithm)
    if ranker != SELECT:
        ranker_named(ranker)  # an unknown name fails before any fitting
    split = split_by_viewer(interactions, seed=seed)
    index = Index.of(interactions)
    metrics: dict[str, Any] = {"split": split.describe(), "catalogue": len(index.movies), "viewers": len(index.viewers)}

    with watch("rating model"):
        rating, trainset, rating_params, estimates = _rating_fit(
            rating_spec, rating_params, split=split, tune=tune, seed=seed, metrics=metrics
        )
    truths = split.test.scores[split.test.rated].astype(np.float64)
    metrics.update(rating_errors(estimates, truths))

    x = index.matrix(split.train)
    if ranker == SELECT:
        with watch("model selection"):
            selection = _ranker_choose(x, seed=seed, budget_seconds=selection_seconds, viewers=selection_viewers)
        metrics["selection"] = selection.describe()
        ranker, ranker_params = selection.chosen.ranker, selection.chosen.params
    else:
        ranker_params = ranker_named(ranker).parameters(ranker_params)
    ranker_spec = ranker_named(ranker)

    with watch("ranker (held-out)"):
        measured_model = ranker_spec.fit(x, **ranker_params)
    with watch("evaluation"):
        held_out = index.matrix(split.test)
        measurable = np.flatnonzero(np.diff(held_out.indptr) > 0)
        rows = _sample(measurable, evaluation_viewers, seed)
        if len(rows) < len(measurable):
            metrics["evaluation_sample"] = {"viewers": evaluation_viewers, "seed": seed}
        ranking = measure(measured_model, x, held_out, rows)
        popularity = measure(Popularity.fit(x), x, held_out, rows)
        metrics["popularity"] = popularity.mean()
        if "selection" in metrics and ranker != Popularity.name and _below(ranking, popularity):
            # Selection's winner won on validation by less than chance moves it: on the held-out
            # split it is below everyone's list, so everyone's list serves (a forced ranker is
            # left for the gate to refuse).
            metrics["selection"]["fallback"] = {
                "ranker": ranker,
                "ndcg": ranking.mean().get("ndcg@10"),
                "reason": "below popularity on the held-out split",
            }
            metrics["selection"]["chosen"] = {"ranker": Popularity.name, "params": {}}
            ranker, ranker_params, ranker_spec, ranking = Popularity.name, {}, Popularity, popularity
        metrics.update(ranking.mean())
    del measured_model, x, held_out

    with watch("ranker refit on all the data"):
        seen = index.matrix(interactions)
        ranker_model = ranker_spec.fit(seen, **ranker_params)
    with watch("top lists"):
        top = top_for_rows(ranker_model, seen, np.arange(len(index.viewers)), top_count)
    metrics["refit"] = {"interactions": len(interactions)}
    listed = np.unique(top[:, :20])
    metrics["coverage@20"] = round(int((listed >= 0).sum()) / max(len(index.movies), 1), 5)
    metrics["seconds"] = watch.seconds
    test_rated = split.test.rated
    rated = interactions.rated
    return TrainedModels(
        index=index,
        ranker=ranker,
        ranker_params=ranker_params,
        ranker_model=ranker_model,
        seen=seen,
        ratings=sp.csr_matrix(
            (interactions.scores[rated], (index.rows(interactions.viewers[rated]), interactions.movies[rated])),
            shape=seen.shape,
        ),
        rating_algorithm=rating_algorithm,
        rating_params=rating_params,
        rating=rating,
        trainset=trainset,
        metrics=metrics,
        group_metrics=group_metrics(
            rated_viewers=split.test.viewers[test_rated],
            estimates=estimates,
            truths=truths,
            ranking=ranking,
            viewers=index.viewers,
            demographics=demographics,
        ),
        top=top,
        evaluation={
            "rating_viewers": split.test.viewers[test_rated].astype(np.int64),
            "rating_estimates": estimates.astype(np.float32),
            "rating_truths": truths.astype(np.float32),
            "ranking_viewers": index.viewers[ranking.rows].astype(np.int64),
            **{
                name: ranking.figures[name].astype(np.float32)
                for name in ("ndcg@10", "recall@10")
                if name in ranking.figures
            },
        },
    )


def _rating_fit(
    spec: RatingAlgorithm,
    overrides: dict[str, Any] | None,
    *,
    split: Split,
    tune: bool,
    seed: int,
    metrics: dict[str, Any],
) -> tuple[Any, Any, dict[str, Any], np.ndarray]:
    """The rating model fitted on the training part (tuned first when asked), its trainset, its
    parameters and its estimates of the held-out ratings."""
    params = spec.parameters(overrides)
    if tune and spec.with_svd is not None:
        best, cv_rmse = tune_svd(list(split.train.ratings()), seed=seed)
        params = spec.with_svd(params, best)
        metrics["tuning"] = {"grid": SVD_TUNE_GRID, "best": best, "cv_rmse": round(cv_rmse, 5)}
    trainset = surprise_trainset(split.train.ratings())
    rating = spec.build(params, seed).fit(trainset)
    estimates = np.array(
        [rating.predict(viewer, movie).est for viewer, movie, _ in split.test.ratings()], dtype=np.float64
    )
    return rating, trainset, params, estimates


def _ranker_choose(x: sp.csr_matrix, *, seed: int, budget_seconds: float, viewers: int) -> Selection:
    """Model selection on a validation split carved out of the training part's rows of ``x``."""
    rows, columns = x.nonzero()
    carved = split_by_viewer(
        Interactions(rows.astype(np.int64), columns.astype(np.int32), np.full(len(rows), np.nan, np.float32), []),
        seed=seed + 1,
    )
    fit_part = sp.csr_matrix(
        (np.ones(int((~carved.held_out).sum()), np.float32), (rows[~carved.held_out], columns[~carved.held_out])),
        shape=x.shape,
    )
    validation = sp.csr_matrix(
        (np.ones(int(carved.held_out.sum()), np.float32), (rows[carved.held_out], columns[carved.held_out])),
        shape=x.shape,
    )
    measured = _sample(np.flatnonzero(np.diff(validation.indptr) > 0), viewers, seed)
    return ranker_select(fit_part, validation, measured, names=RANKERS, budget_seconds=budget_seconds)


def _below(ranking: PerViewer, popularity: PerViewer) -> bool:
    return float(ranking.mean().get("ndcg@10", 0.0)) < float(popularity.mean().get("ndcg@10", 0.0))


def _sample(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` of ``rows``, a fixed sample chosen by ``seed``."""
    if len(rows) <= size:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))
