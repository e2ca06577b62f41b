"""The machine learning: splitting a snapshot, training the two models, measuring them.

Two jobs, two models. The rating model (scikit-surprise) predicts a viewer's score for a movie
and is measured by RMSE, as the seed system's gate was. The ranker orders the catalogue for the
list a viewer sees and is trained on implicit feedback (ratings and watches together): a rating
model ranks poorly (on MovieLens-100K, Microsoft Recommenders measured NDCG@10 of 0.096 for
surprise SVD, below plain popularity). EASE (Steck 2019) is the default ranker: closed form, one
hyper-parameter, and the best of the rankers here by measurement (see benchmarks/training.py).

Nothing in this module touches the database: it works on ``SnapshotData`` and numpy arrays, so
the benchmark runs it on MovieLens files directly.
"""

from __future__ import annotations

import csv
import math
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from surprise import SVD, AlgoBase, BaselineOnly, Dataset, KNNBaseline, Reader, SVDpp
from surprise.model_selection import GridSearchCV

RATING_ALGORITHMS = ("svd", "svdpp", "knnbaseline", "baseline", "blend")
RANKERS = ("ease", "itemknn", "popularity")
RANK_CUTOFFS = (10, 20)
AGE_BUCKETS = (
    (0, 17, "<18"),
    (18, 24, "18-24"),
    (25, 34, "25-34"),
    (35, 44, "35-44"),
    (45, 54, "45-54"),
    (55, 200, "55+"),
)

# Chosen by measurement on MovieLens-100K (benchmarks/training.py): 5-fold RMSE 0.916, against
# 0.936 for scikit-surprise's own defaults (20 epochs, lr 0.005, reg 0.02; it publishes 0.934).
SVD_DEFAULTS: dict[str, Any] = {"n_factors": 100, "n_epochs": 30, "lr_all": 0.007, "reg_all": 0.06}
SVD_TUNE_GRID: dict[str, list[Any]] = {
    "n_factors": [50, 100],
    "n_epochs": [20, 30, 40],
    "lr_all": [0.005, 0.007, 0.01],
    "reg_all": [0.04, 0.06, 0.08],
}
EASE_DEFAULTS: dict[str, Any] = {"l2": 300.0}
ITEMKNN_DEFAULTS: dict[str, Any] = {"neighbours": 100}


@dataclass(frozen=True)
class Interaction:
    viewer: int
    movie: str
    score: int | None  # the current rating, when the viewer rated it


@dataclass
class Split:
    """A per-viewer stratified split, fixed by ``seed``: each viewer's interactions are shuffled
    and ``test_share`` of them held out (viewers with one interaction keep it for training)."""

    seed: int
    test_share: float
    train: list[Interaction]
    test: list[Interaction]

    @property
    def train_ratings(self) -> list[tuple[int, str, int]]:
        return [(i.viewer, i.movie, i.score) for i in self.train if i.score is not None]

    @property
    def test_ratings(self) -> list[tuple[int, str, int]]:
        return [(i.viewer, i.movie, i.score) for i in self.test if i.score is not None]

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "test_share": self.test_share,
            "protocol": "per-viewer stratified split of interactions; ratings evaluated on held-out rated pairs",
            "train_interactions": len(self.train),
            "test_interactions": len(self.test),
            "train_ratings": len(self.train_ratings),
            "test_ratings": len(self.test_ratings),
        }


def split_by_viewer(interactions: Iterable[Interaction], *, seed: int, test_share: float = 0.25) -> Split:
    by_viewer: dict[int, list[Interaction]] = defaultdict(list)
    for interaction in interactions:
        by_viewer[interaction.viewer].append(interaction)
    rng = random.Random(seed)
    train: list[Interaction] = []
    test: list[Interaction] = []
    for viewer in sorted(by_viewer):
        items = sorted(by_viewer[viewer], key=lambda i: i.movie)
        rng.shuffle(items)
        held_out = round(len(items) * test_share) if len(items) > 1 else 0
        test.extend(items[:held_out])
        train.extend(items[held_out:])
    return Split(seed=seed, test_share=test_share, train=train, test=test)


# --- Rating models (scikit-surprise) -------------------------------------------------------


class Blend(AlgoBase):
    """The mean of SVD and item-based KNNBaseline: their errors are only partly correlated."""

    def __init__(self, svd_params: dict[str, Any], random_state: int = 0) -> None:
        super().__init__()
        self.svd = SVD(**svd_params, random_state=random_state)
        self.knn = _knn_baseline()

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


def _knn_baseline() -> KNNBaseline:
    return KNNBaseline(
        k=40, sim_options={"name": "pearson_baseline", "user_based": False, "shrinkage": 100}, verbose=False
    )


def rating_model(name: str, params: dict[str, Any] | None = None, *, seed: int = 0) -> AlgoBase:
    params = {**SVD_DEFAULTS, **(params or {})}
    if name == "svd":
        return SVD(**params, random_state=seed)
    if name == "svdpp":
        return SVDpp(n_factors=20, n_epochs=20, lr_all=0.007, reg_all=0.02, random_state=seed, cache_ratings=True)
    if name == "knnbaseline":
        return _knn_baseline()
    if name == "baseline":
        return BaselineOnly(verbose=False)
    if name == "blend":
        return Blend(params, random_state=seed)
    raise ValueError(f"unknown rating algorithm {name!r}: use one of {', '.join(RATING_ALGORITHMS)}")


def surprise_trainset(ratings: Iterable[tuple[int, str, int]]) -> Any:
    dataset = Dataset(Reader(rating_scale=(1, 5)))
    return dataset.construct_trainset([(viewer, movie, float(score), None) for viewer, movie, score in ratings])


@contextmanager
def surprise_dataset(ratings: Iterable[tuple[int, str, int]]) -> Iterator[Any]:
    """A scikit-surprise ``Dataset`` for cross-validation, through the file loader it documents."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ratings.csv"
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(ratings)
        yield Dataset.load_from_file(str(path), Reader(line_format="user item rating", sep=",", rating_scale=(1, 5)))


def tune_svd(ratings: list[tuple[int, str, int]], *, seed: int, folds: int = 3) -> tuple[dict[str, Any], float]:
    """Grid-search SVD's parameters by cross-validation on the training ratings only."""
    with surprise_dataset(ratings) as data:
        search = GridSearchCV(
            SVD, {**SVD_TUNE_GRID, "random_state": [seed]}, measures=["rmse"], cv=folds, n_jobs=1, joblib_verbose=0
        )
        search.fit(data)
    best = {key: value for key, value in search.best_params["rmse"].items() if key != "random_state"}
    return best, float(search.best_score["rmse"])


# --- Rankers (implicit feedback) -----------------------------------------------------------


@dataclass
class Index:
    """Dense indices for viewers and movies, shared by the ranker, the metrics and the artifact."""

    viewers: list[int]
    movies: list[str]
    viewer_index: dict[int, int] = field(init=False)
    movie_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.viewer_index = {viewer: i for i, viewer in enumerate(self.viewers)}
        self.movie_index = {movie: i for i, movie in enumerate(self.movies)}

    def matrix(self, interactions: Iterable[Interaction]) -> np.ndarray:
        x = np.zeros((len(self.viewers), len(self.movies)), dtype=np.float32)
        for interaction in interactions:
            x[self.viewer_index[interaction.viewer], self.movie_index[interaction.movie]] = 1.0
        return x


def train_ease(x: np.ndarray, *, l2: float) -> np.ndarray:
    """EASE: item-item weights B = I - P / diag(P), P = (XᵀX + λI)⁻¹, with a zero diagonal."""
    gram = (x.T @ x).astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)


def train_itemknn(x: np.ndarray, *, neighbours: int) -> np.ndarray:
    """Item-based kNN with cosine similarity, keeping each item's ``neighbours`` nearest."""
    norms = np.sqrt((x * x).sum(axis=0)) + 1e-9
    similarity = (x.T @ x) / norms[:, None] / norms[None, :]
    np.fill_diagonal(similarity, 0.0)
    if neighbours < similarity.shape[0]:
        cutoff = np.partition(similarity, -neighbours, axis=0)[-neighbours]
        similarity[similarity < cutoff[None, :]] = 0.0
    return similarity.astype(np.float32)


def rank_scores(name: str, x: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if name == "popularity":
        return np.broadcast_to(x.sum(axis=0), x.shape).copy()
    assert weights is not None
    return x @ weights


def top_n(scores: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` best unseen items per row, best first (a partial sort, not a full one)."""
    scores = np.where(seen > 0, -np.inf, scores)
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


# --- Measuring -----------------------------------------------------------------------------


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


def age_bucket(age: int | None) -> str:
    if age is None:
        return "unknown"
    return next(label for low, high, label in AGE_BUCKETS if low <= age <= high)


@dataclass
class TrainedModels:
    """What a training run produced: both models, the index and every figure."""

    index: Index
    ranker: str
    ranker_params: dict[str, Any]
    weights: np.ndarray | None
    seen: np.ndarray
    rating_algorithm: str
    rating_params: dict[str, Any]
    rating: AlgoBase
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
    stored with a version describe exactly the artifact that serves.
    """
    if rating_algorithm not in RATING_ALGORITHMS:
        raise ValueError(f"unknown rating algorithm {rating_algorithm!r}: use one of {', '.join(RATING_ALGORITHMS)}")
    if ranker not in RANKERS:
        raise ValueError(f"unknown ranker {ranker!r}: use one of {', '.join(RANKERS)}")
    split = split_by_viewer(interactions, seed=seed)
    metrics: dict[str, Any] = {"split": split.describe()}

    progress("rating model")
    rating_params = dict(rating_params or {})
    if tune and rating_algorithm in ("svd", "blend"):
        best, cv_rmse = tune_svd(split.train_ratings, seed=seed)
        rating_params.update(best)
        metrics["tuning"] = {"grid": SVD_TUNE_GRID, "best": best, "cv_rmse": round(cv_rmse, 5)}
    started = time.perf_counter()
    trainset = surprise_trainset(split.train_ratings)
    rating = rating_model(rating_algorithm, rating_params, seed=seed).fit(trainset)
    metrics["rating_fit_seconds"] = round(time.perf_counter() - started, 3)
    predictions = rating.test([(v, m, float(s)) for v, m, s in split.test_ratings])
    estimates = [(p.est, p.r_ui) for p in predictions]
    metrics.update(rating_errors(estimates))

    progress("ranker")
    viewers = sorted({i.viewer for i in split.train})
    index = Index(viewers=viewers, movies=sorted(set(catalogue) | {i.movie for i in interactions}))
    x = index.matrix(split.train)
    ranker_params = {**{"ease": EASE_DEFAULTS, "itemknn": ITEMKNN_DEFAULTS}.get(ranker, {}), **(ranker_params or {})}
    started = time.perf_counter()
    weights = (
        train_ease(x, **ranker_params)
        if ranker == "ease"
        else train_itemknn(x, **ranker_params)
        if ranker == "itemknn"
        else None
    )
    metrics["ranker_fit_seconds"] = round(time.perf_counter() - started, 3)

    progress("evaluation")
    relevant: list[set[int]] = [set() for _ in viewers]
    for interaction in split.test:
        row = index.viewer_index.get(interaction.viewer)
        if row is not None:
            relevant[row].add(index.movie_index[interaction.movie])
    top = top_n(rank_scores(ranker, x, weights), x, max(top_count, max(RANK_CUTOFFS)))
    metrics.update(ranking_metrics(top, relevant))
    popular_top = top_n(rank_scores("popularity", x, None), x, max(RANK_CUTOFFS))
    metrics["popularity"] = ranking_metrics(popular_top, relevant)
    metrics["coverage@20"] = round(len(np.unique(top[:, :20])) / len(index.movies), 5)
    metrics["catalogue"] = len(index.movies)
    metrics["viewers"] = len(viewers)

    group_metrics = _group_metrics(
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
        group_metrics=group_metrics,
        top=top[:, :top_count],
        relevant=relevant,
    )


def _group_metrics(
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
