"""Rating models (scikit-surprise) and their registry.

Each algorithm is registered once with its builder and the parameters it runs with, so the
``train`` command, the settings check and the registry's lineage all read the same place, and a
version stores the parameters its model actually used.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from surprise import SVD, AlgoBase, BaselineOnly, Dataset, KNNBaseline, Reader, SVDpp
from surprise.model_selection import GridSearchCV

from recommender.learning.spark import SPARK_ALS_RATING_DEFAULTS, SparkALSRating

# Chosen by measurement on MovieLens-100K (benchmarks/training.py): 5-fold RMSE 0.916, against
# 0.936 for scikit-surprise's own defaults (20 epochs, lr 0.005, reg 0.02; it publishes 0.934).
SVD_DEFAULTS: dict[str, Any] = {"n_factors": 100, "n_epochs": 30, "lr_all": 0.007, "reg_all": 0.06}
SVD_TUNE_GRID: dict[str, list[Any]] = {
    "n_factors": [50, 100],
    "n_epochs": [20, 30, 40],
    "lr_all": [0.005, 0.007, 0.01],
    "reg_all": [0.04, 0.06, 0.08],
}
# SVD++ is slow (minutes on MovieLens-100K at 100 factors): a smaller model.
SVDPP_DEFAULTS: dict[str, Any] = {"n_factors": 20, "n_epochs": 20, "lr_all": 0.007, "reg_all": 0.02}
KNN_BASELINE_DEFAULTS: dict[str, Any] = {
    "k": 40,
    "sim_options": {"name": "pearson_baseline", "user_based": False, "shrinkage": 100},
}
# scikit-surprise's own baseline settings, written out so the registry records them.
BASELINE_DEFAULTS: dict[str, Any] = {"bsl_options": {"method": "als", "n_epochs": 10, "reg_u": 15, "reg_i": 10}}


class Blend(AlgoBase):  # type: ignore[misc]  # scikit-surprise ships no type information
    """The mean of SVD and item-based KNNBaseline: their errors are only partly correlated."""

    def __init__(self, svd: dict[str, Any], knnbaseline: dict[str, Any], random_state: int = 0) -> None:
        super().__init__()
        self.svd = SVD(**svd, random_state=random_state)
        self.knn = KNNBaseline(**knnbaseline, verbose=False)

    def fit(self, trainset: Any) -> Blend:
        super().fit(trainset)
        self.svd.fit(trainset)
        self.knn.fit(trainset)
        self.bu, self.bi = self.knn.bu, self.knn.bi
        return self

    def estimate(self, u: int, i: int) -> float:
        estimates = []
        for algorithm in (self.svd, self.knn):
            estimate = algorithm.estimate(u, i)
            estimates.append(estimate[0] if isinstance(estimate, tuple) else estimate)
        return float(np.mean(estimates))


@dataclass(frozen=True)
class RatingAlgorithm:
    """One registered rating model: how to build it, and with which parameters by default.

    ``with_svd`` says how grid-searched SVD parameters enter this algorithm's parameters; it is
    ``None`` for algorithms that ``--tune`` does not apply to.
    """

    name: str
    defaults: dict[str, Any]
    build: Callable[[dict[str, Any], int], Any]
    with_svd: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None

    def parameters(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**self.defaults, **(overrides or {})}


RATING_ALGORITHMS: dict[str, RatingAlgorithm] = {
    algorithm.name: algorithm
    for algorithm in (
        RatingAlgorithm(
            "svd",
            SVD_DEFAULTS,
            lambda params, seed: SVD(**params, random_state=seed),
            with_svd=lambda params, best: {**params, **best},
        ),
        RatingAlgorithm(
            "svdpp", SVDPP_DEFAULTS, lambda params, seed: SVDpp(**params, random_state=seed, cache_ratings=True)
        ),
        RatingAlgorithm(
            "knnbaseline", KNN_BASELINE_DEFAULTS, lambda params, seed: KNNBaseline(**params, verbose=False)
        ),
        RatingAlgorithm("baseline", BASELINE_DEFAULTS, lambda params, seed: BaselineOnly(**params, verbose=False)),
        RatingAlgorithm(
            "spark-als", SPARK_ALS_RATING_DEFAULTS, lambda params, seed: SparkALSRating(**params, random_state=seed)
        ),
        RatingAlgorithm(
            "blend",
            {"svd": SVD_DEFAULTS, "knnbaseline": KNN_BASELINE_DEFAULTS},
            lambda params, seed: Blend(**params, random_state=seed),
            with_svd=lambda params, best: {**params, "svd": {**params["svd"], **best}},
        ),
    )
}


def rating_algorithm_named(name: str) -> RatingAlgorithm:
    try:
        return RATING_ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown rating algorithm {name!r}: use one of {', '.join(RATING_ALGORITHMS)}") from None


def rating_model(name: str, params: dict[str, Any] | None = None, *, seed: int = 0) -> Any:
    """An unfitted scikit-surprise model of the named algorithm, with its default parameters
    overridden by ``params``."""
    algorithm = rating_algorithm_named(name)
    return algorithm.build(algorithm.parameters(params), seed)


class RatingRows(Protocol):
    """Rows of (viewer, movie, score) that know how many they are."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[int, int | str, float]]: ...


def surprise_trainset(ratings: RatingRows) -> Any:
    """A trainset read from ``ratings`` in one pass (scikit-surprise keeps its own copy)."""
    dataset = Dataset(Reader(rating_scale=(1, 5)))
    return dataset.construct_trainset(_Timeless(ratings))


class _Timeless:
    """Rows as scikit-surprise reads them (with a timestamp), made as it reads them."""

    def __init__(self, ratings: RatingRows) -> None:
        self.ratings = ratings

    def __len__(self) -> int:
        return len(self.ratings)

    def __iter__(self) -> Iterator[tuple[int, int | str, float, None]]:
        return ((viewer, movie, float(score), None) for viewer, movie, score in self.ratings)


@contextmanager
def surprise_dataset(ratings: Iterable[tuple[int, int | str, float]]) -> Iterator[Any]:
    """A scikit-surprise ``Dataset`` for cross-validation, through the file loader it documents."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ratings.csv"
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(ratings)
        yield Dataset.load_from_file(str(path), Reader(line_format="user item rating", sep=",", rating_scale=(1, 5)))


def tune_svd(ratings: list[tuple[int, int, float]], *, seed: int, folds: int = 3) -> tuple[dict[str, Any], float]:
    """Grid-search SVD's parameters by cross-validation on the training ratings only."""
    with surprise_dataset(ratings) as data:
        search = GridSearchCV(
            SVD, {**SVD_TUNE_GRID, "random_state": [seed]}, measures=["rmse"], cv=folds, n_jobs=1, joblib_verbose=0
        )
        search.fit(data)
    best = {key: value for key, value in search.best_params["rmse"].items() if key != "random_state"}
    return best, float(search.best_score["rmse"])
