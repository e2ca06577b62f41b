"""Rankers trained on implicit feedback, their registry, and the top-N selection.

Everything here is sparse: the viewer-by-movie matrix is a ``scipy.sparse`` CSR matrix, and no
array grows with viewers times movies. Scores are computed for a batch of viewers at a time.

A fitted ranker is a ``RankerModel``: a kind and the arrays that define it, which go into the
artifact as they are, so serving scores with the same code that training measured.

- ``item-item`` (EASE, item-kNN): a sparse movie-by-movie weight matrix; a viewer's scores are
  the sum of the rows of the movies they have seen.
- ``factors`` (ALS): movie factors, the viewers' factors, and YᵀY; a changed history is folded
  in by one k-by-k solve, as ``implicit`` recalculates a user.
- ``popularity``: one count per movie.

The default is chosen by measurement (benchmarks/training.py, benchmarks/scale.py; figures in
docs/scaling.md): EASE is the most accurate where its cubic cost fits; at the platform's size it
is restricted to the most-watched movies and pruned to each movie's strongest neighbours.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.learning.splitting import Interactions

SCORE_BATCH = 2048  # viewers scored at once: 2048 by 27k float32 scores is 220 MB


@dataclass
class Index:
    """Rows for viewers (sorted ids) and columns for movies (sorted slugs), shared by the
    ranker, the metrics and the artifact."""

    viewers: np.ndarray  # int64, sorted, unique
    movies: list[str]

    def __post_init__(self) -> None:
        self.viewers = np.asarray(self.viewers, dtype=np.int64)

    @classmethod
    def of(cls, interactions: Interactions) -> Index:
        return cls(viewers=np.unique(interactions.viewers), movies=interactions.catalogue)

    def rows(self, viewer_ids: np.ndarray) -> np.ndarray:
        """Rows of viewers known to the index; -1 for the others."""
        rows = np.searchsorted(self.viewers, viewer_ids)
        rows = np.minimum(rows, max(len(self.viewers) - 1, 0))
        known = (self.viewers[rows] == viewer_ids) if len(self.viewers) else np.zeros(len(viewer_ids), bool)
        found: np.ndarray = np.where(known, rows, -1)
        return found

    def matrix(self, interactions: Interactions) -> sp.csr_matrix:
        """The binary viewer-by-movie matrix (float32), over the index's rows."""
        rows = self.rows(interactions.viewers)
        known = rows >= 0
        x = sp.csr_matrix(
            (np.ones(int(known.sum()), np.float32), (rows[known], interactions.movies[known])),
            shape=(len(self.viewers), len(self.movies)),
        )
        x.sum_duplicates()
        x.data[:] = 1.0
        return x


@dataclass
class RankerModel:
    kind: str  # item-item | factors | popularity
    arrays: dict[str, np.ndarray]
    movies: int
    _weights: sp.csr_matrix | None = field(default=None, init=False, repr=False)
    _reach: tuple[np.ndarray, sp.csr_matrix] | None = field(default=None, init=False, repr=False)

    @property
    def weights(self) -> sp.csr_matrix:
        """The item-item matrix over the arrays as stored (no copy: they may be memory-mapped)."""
        if self._weights is None:
            self._weights = sp.csr_matrix(
                (self.arrays["weights_data"], self.arrays["weights_indices"], self.arrays["weights_indptr"]),
                shape=(self.movies, self.movies),
                copy=False,
            )
        return self._weights

    def score_rows(self, x: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Scores of every movie for the given rows of the matrix the ranker was fitted on."""
        if self.kind == "item-item":
            return np.asarray((x[rows] @ self.weights).toarray(), dtype=np.float32)
        if self.kind == "factors":
            scores: np.ndarray = self.arrays["viewer_factors"][rows] @ self.arrays["movie_factors"].T
            return scores
        return np.broadcast_to(self.arrays["popularity"], (len(rows), self.movies)).astype(np.float32)

    def top_rows(self, x: sp.csr_matrix, rows: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` best unseen movies for ``rows``, scoring only the movies that can score:
        those an item-item matrix reaches (EASE's head of the catalogue), or for popularity the
        most popular ``n`` plus as many as the batch's most active viewer has seen."""
        if self.kind == "factors":
            return top_n(self.score_rows(x, rows), x[rows], n)
        seen = x[rows]
        if self.kind == "item-item":
            columns, reached = self._reached()
            scores = np.asarray((seen @ reached).toarray(), dtype=np.float32)
        else:
            deepest = int(np.diff(seen.indptr).max()) if seen.shape[0] else 0
            columns = np.argsort(-self.arrays["popularity"], kind="stable")[: n + deepest]
            scores = np.broadcast_to(self.arrays["popularity"][columns], (len(rows), len(columns)))
        top = top_n(scores, seen[:, columns], n)
        return np.where(top >= 0, columns[np.maximum(top, 0)], -1).astype(np.int32)

    def _reached(self) -> tuple[np.ndarray, sp.csr_matrix]:
        if self._reach is None:
            columns = np.unique(self.arrays["weights_indices"]).astype(np.int64)
            self._reach = (columns, self.weights[:, columns].tocsr())
        return self._reach

    def score_history(self, columns: np.ndarray) -> np.ndarray:
        """Scores of every movie for a viewer who has seen ``columns`` (a changed or new history)."""
        if self.kind == "item-item":
            return np.asarray(self.weights[columns].sum(axis=0), dtype=np.float32).ravel()
        if self.kind == "factors":
            scores: np.ndarray = self.arrays["movie_factors"] @ self.fold_in(columns)
            return scores
        return np.array(self.arrays["popularity"], dtype=np.float32)

    def fold_in(self, columns: np.ndarray) -> np.ndarray:
        """A viewer's factors from their history, as ALS computes them (implicit's
        ``user_linear_equation``): (YᵀY + reg·I + Σ (c-1) y yᵀ) x = Σ c y, with c = alpha."""
        factors = self.arrays["movie_factors"][columns].astype(np.float64)
        alpha, regularization = (float(value) for value in self.arrays["fold_in"])
        a = self.arrays["gram"] + regularization * np.eye(factors.shape[1]) + (alpha - 1.0) * (factors.T @ factors)
        b = alpha * factors.sum(axis=0)
        solved: np.ndarray = np.linalg.solve(a, b).astype(np.float32)
        return solved


def train_ease(x: sp.csr_matrix, *, l2: float, max_movies: int, neighbours: int) -> RankerModel:
    """EASE (Steck 2019): B = I - P / diag(P), P = (XᵀX + λI)⁻¹, zero diagonal.

    Its cost is cubic in the movies it covers, so it covers the ``max_movies`` most-watched
    (every movie on MovieLens-100K; the head that holds most watches at the platform's size),
    and keeps each movie's ``neighbours`` largest weights: the stored matrix is sparse.
    """
    counts = np.asarray(x.sum(axis=0)).ravel()
    watched = np.flatnonzero(counts > 0)
    kept = watched[np.argsort(-counts[watched], kind="stable")[:max_movies]]
    kept.sort()
    part = x[:, kept]
    gram = (part.T @ part).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    del gram
    weights = inverse / (-np.diag(inverse))
    del inverse
    weights[np.diag_indices_from(weights)] = 0.0
    return _item_item(_prune(weights.astype(np.float32), neighbours), kept, x.shape[1])


def train_itemknn(x: sp.csr_matrix, *, neighbours: int) -> RankerModel:
    """Item-based kNN with cosine similarity, each movie keeping its ``neighbours`` nearest;
    ``implicit`` computes it movie by movie, never holding the full XᵀX."""
    from implicit.nearest_neighbours import CosineRecommender
    from implicit.utils import ParameterWarning

    model = CosineRecommender(K=neighbours)
    with warnings.catch_warnings():
        # CosineRecommender hands its own normalised COO copy on, and then warns about it.
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(x, show_progress=False)
    similarity = sp.csr_matrix(model.similarity, dtype=np.float32)
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return _item_item(similarity, np.arange(x.shape[1]), x.shape[1])


def train_als(
    x: sp.csr_matrix, *, factors: int, regularization: float, iterations: int, alpha: float, seed: int = 42
) -> RankerModel:
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008) from ``implicit``, multithreaded."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads would fight them
        model = AlternatingLeastSquares(
            factors=factors, regularization=regularization, iterations=iterations, alpha=alpha, random_state=seed
        )
        model.fit(x, show_progress=False)
    movie_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    return RankerModel(
        kind="factors",
        arrays={
            "movie_factors": movie_factors,
            "viewer_factors": np.ascontiguousarray(model.user_factors, dtype=np.float32),
            "gram": (movie_factors.T.astype(np.float64) @ movie_factors),
            "fold_in": np.array([alpha, regularization], dtype=np.float64),
        },
        movies=x.shape[1],
    )


def train_popularity(x: sp.csr_matrix) -> RankerModel:
    popularity = np.asarray(x.sum(axis=0), dtype=np.float32).ravel()
    return RankerModel(kind="popularity", arrays={"popularity": popularity}, movies=x.shape[1])


def _prune(weights: np.ndarray, neighbours: int) -> sp.csr_matrix:
    """Each row's ``neighbours`` largest weights by magnitude, as a sparse matrix."""
    size = weights.shape[0]
    if neighbours >= size:
        return sp.csr_matrix(weights)
    keep = np.argpartition(-np.abs(weights), neighbours - 1, axis=1)[:, :neighbours]
    values = np.take_along_axis(weights, keep, axis=1)
    rows = np.repeat(np.arange(size), neighbours)
    pruned = sp.csr_matrix((values.ravel(), (rows, keep.ravel())), shape=weights.shape)
    pruned.eliminate_zeros()
    return pruned


def _item_item(weights: sp.csr_matrix, columns: np.ndarray, movies: int) -> RankerModel:
    """Place weights over ``columns`` into a movies-by-movies matrix."""
    coo = weights.tocoo()
    full = sp.csr_matrix(
        (coo.data.astype(np.float32), (columns[coo.row], columns[coo.col])), shape=(movies, movies), dtype=np.float32
    )
    full.sort_indices()
    return RankerModel(
        kind="item-item",
        arrays={
            "weights_indptr": full.indptr.astype(np.int64),
            "weights_indices": full.indices.astype(np.int32),
            "weights_data": full.data,
        },
        movies=movies,
    )


@dataclass(frozen=True)
class Ranker:
    """One registered ranker: ``fit`` learns a ``RankerModel`` from the viewer-by-movie matrix,
    with ``defaults`` overridden by a version's parameters."""

    name: str
    defaults: dict[str, Any]
    fit: Callable[..., RankerModel]

    def parameters(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**self.defaults, **(overrides or {})}


RANKERS: dict[str, Ranker] = {
    ranker.name: ranker
    for ranker in (
        # l2 300 and 1,000 neighbours: NDCG@10 0.478 on MovieLens-100K (0.472 with 200, 0.478 unpruned).
        Ranker("ease", {"l2": 300.0, "max_movies": 5000, "neighbours": 1000}, train_ease),
        # From a grid on MovieLens-100K (factors 32-128, alpha 1-20, regularization 0.05-100):
        # 0.480; implicit's defaults (100 factors, regularization 0.01, alpha 1) reach about 0.29.
        Ranker("als", {"factors": 64, "regularization": 20.0, "iterations": 15, "alpha": 2.0}, train_als),
        Ranker("itemknn", {"neighbours": 100}, train_itemknn),
        Ranker("popularity", {}, train_popularity),
    )
}


def ranker_named(name: str) -> Ranker:
    try:
        return RANKERS[name]
    except KeyError:
        raise ValueError(f"unknown ranker {name!r}: use one of {', '.join(RANKERS)}") from None


def top_n(scores: np.ndarray, seen: sp.csr_matrix, n: int) -> np.ndarray:
    """Indices of the ``n`` best unseen items per row, best first (a partial sort, not a full one);
    -1 fills a row whose viewer has seen all but fewer than ``n``.

    ``seen`` holds the same rows as ``scores``; it is sparse, so marking what a viewer has seen
    costs what they have seen, not the catalogue."""
    scores = np.array(scores, dtype=np.float32)  # a copy: the caller's scores stay as they were
    seen = sp.csr_matrix(seen)
    scores[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr)), seen.indices] = -np.inf
    n = min(n, scores.shape[1])
    if n == 0:
        return np.empty((scores.shape[0], 0), dtype=np.int64)
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    best = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    top[np.take_along_axis(best, order, axis=1) == -np.inf] = -1  # fewer unseen movies than n
    return top


def batches(rows: np.ndarray, size: int = SCORE_BATCH) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def top_for_rows(model: RankerModel, x: sp.csr_matrix, rows: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best unseen movies for each of ``rows``, scored a batch at a time."""
    n = min(n, x.shape[1])
    top = np.full((len(rows), n), -1, dtype=np.int32)
    done = 0
    for batch in batches(rows):
        found = model.top_rows(x, batch, n)
        top[done : done + len(batch), : found.shape[1]] = found
        done += len(batch)
    return top
