"""Rankers trained on implicit feedback: one class per algorithm on a common base, as
``implicit``'s ``RecommenderBase`` does it, their registry, and the top-N selection.

Everything here is sparse: the viewer-by-movie matrix is a ``scipy.sparse`` CSR matrix, and no
array grows with viewers times movies. Scores are computed for a batch of viewers at a time.

A fitted ranker is its arrays (they go into the artifact as they are, and serving maps them
back into the same class), so serving scores with the code that training measured. Three ways
of scoring, each a base class, and the algorithms that fit them:

- ``ItemItem``: a sparse movie-by-movie weight matrix; a viewer's scores are the sum of the
  rows of the movies they have seen. Fitted by ``EASE``, ``ItemKNN`` and ``RP3beta``.
- ``Factors``: movie factors, the viewers' factors, and YᵀY; a changed history is folded in by
  one k-by-k solve, as ``implicit`` recalculates a user. Fitted by ``ALS``.
- ``Popularity``: one count per movie, the same for everyone.

Adding a ranker is one class (its ``fit``, its ``defaults`` and the ``grid`` model selection
tries) and one line in ``RANKERS``. Which one serves is chosen by measurement at every training
(``recommender.learning.selection``); the defaults below are where each one's grid is centred.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Self

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


class Ranker:
    """A fitted ranker: the arrays that define it, and how it scores.

    ``name`` is its registry name, ``kind`` the way it scores (stored in the artifact, which
    maps back to the scoring class); ``defaults`` are the parameters ``fit`` runs with and
    ``grid`` the overrides of them that model selection tries, most promising first."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    grid: ClassVar[tuple[dict[str, Any], ...]] = ({},)
    personal: ClassVar[bool] = True  # whether a viewer's history changes their scores

    def __init__(self, arrays: dict[str, np.ndarray], movies: int) -> None:
        self.arrays = arrays
        self.movies = movies

    @classmethod
    def parameters(cls, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**cls.defaults, **(overrides or {})}

    @classmethod
    def fit(cls, x: sp.csr_matrix, **params: Any) -> Ranker:
        """Learn from the binary viewer-by-movie matrix ``x``."""
        raise NotImplementedError(f"{cls.__name__} scores an artifact's arrays; it is not fitted itself")

    def score_rows(self, x: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Scores of every movie for the given rows of the matrix the ranker was fitted on."""
        raise NotImplementedError

    def score_history(self, columns: np.ndarray) -> np.ndarray:
        """Scores of every movie for a viewer who has seen ``columns`` (a changed or new history),
        as a fresh array the caller may change."""
        raise NotImplementedError

    def top_rows(self, x: sp.csr_matrix, rows: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` best unseen movies for ``rows`` of ``x`` (-1 where fewer are left)."""
        return top_n(self.score_rows(x, rows), x[rows], n)

    def top_history(self, columns: np.ndarray, n: int, *, exclude: np.ndarray | None = None) -> np.ndarray:
        """The ``n`` best movies, best first, for a viewer who has seen ``columns``, leaving out
        those and ``exclude``: what serving answers for a history the artifact has no row for."""
        # score_history returns a fresh array for every kind: it is masked in place, no copy.
        scores = self.score_history(columns)
        scores[columns] = -np.inf
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        n = min(n, int(np.isfinite(scores).sum()))
        if n <= 0:
            return np.array([], dtype=np.int64)
        best = np.argpartition(-scores, n - 1)[:n]
        found: np.ndarray = best[np.argsort(-scores[best], kind="stable")]
        return found


class ItemItem(Ranker):
    """Scores by a sparse movie-by-movie weight matrix: a viewer's scores are the sum of the rows
    of the movies they have seen."""

    kind = "item-item"
    _weights: sp.csr_matrix | None = None
    _reach: tuple[np.ndarray, sp.csr_matrix] | None = None

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

    @classmethod
    def of_weights(cls, weights: sp.csr_matrix, columns: np.ndarray, movies: int) -> Self:
        """Place weights over ``columns`` into a movies-by-movies matrix."""
        coo = weights.tocoo()
        full = sp.csr_matrix(
            (coo.data.astype(np.float32), (columns[coo.row], columns[coo.col])),
            shape=(movies, movies),
            dtype=np.float32,
        )
        full.sort_indices()
        arrays = {
            "weights_indptr": full.indptr.astype(np.int64),
            "weights_indices": full.indices.astype(np.int32),
            "weights_data": full.data,
        }
        return cls(arrays, movies)

    def score_rows(self, x: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        return np.asarray((x[rows] @ self.weights).toarray(), dtype=np.float32)

    def top_rows(self, x: sp.csr_matrix, rows: np.ndarray, n: int) -> np.ndarray:
        """Scores only the movies the matrix reaches (EASE's head of the catalogue)."""
        seen = x[rows]
        columns, reached = self._reached()
        scores = np.asarray((seen @ reached).toarray(), dtype=np.float32)
        top = top_n(scores, seen[:, columns], n)
        return np.where(top >= 0, columns[np.maximum(top, 0)], -1).astype(np.int32)

    def _reached(self) -> tuple[np.ndarray, sp.csr_matrix]:
        if self._reach is None:
            columns = np.unique(self.arrays["weights_indices"]).astype(np.int64)
            self._reach = (columns, self.weights[:, columns].tocsr())
        return self._reach

    def score_history(self, columns: np.ndarray) -> np.ndarray:
        return np.asarray(self.weights[columns].sum(axis=0), dtype=np.float32).ravel()


class EASE(ItemItem):
    """EASE (Steck 2019): B = I - P / diag(P), P = (XᵀX + λI)⁻¹, zero diagonal.

    Its cost is cubic in the movies it covers, so it covers the ``max_movies`` most-watched
    (every movie on MovieLens-100K; the head that holds most watches at the platform's size),
    and keeps each movie's ``neighbours`` largest weights: the stored matrix is sparse.
    """

    name = "ease"
    # l2 300 and 1,000 neighbours: NDCG@10 0.478 on MovieLens-100K (0.472 with 200, 0.478 unpruned).
    defaults = {"l2": 300.0, "max_movies": 5000, "neighbours": 1000}
    # The best λ grows with the data's density (the gram's scale): a decade each way.
    grid = ({}, {"l2": 30.0}, {"l2": 3000.0}, {"l2": 100.0}, {"l2": 1000.0})

    @classmethod
    def fit(cls, x: sp.csr_matrix, **params: Any) -> EASE:
        l2, max_movies, neighbours = float(params["l2"]), int(params["max_movies"]), int(params["neighbours"])
        kept, _ = _most_watched(x, max_movies)
        part = x[:, kept]
        gram = (part.T @ part).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += l2
        inverse = np.linalg.inv(gram)
        del gram
        weights = inverse / (-np.diag(inverse))
        del inverse
        weights[np.diag_indices_from(weights)] = 0.0
        return cls.of_weights(_prune(weights.astype(np.float32), neighbours), kept, x.shape[1])


class ItemKNN(ItemItem):
    """Item-based kNN with cosine similarity, each movie keeping its ``neighbours`` nearest;
    ``implicit`` computes it movie by movie, never holding the full XᵀX."""

    name = "itemknn"
    defaults = {"neighbours": 100}
    grid = ({}, {"neighbours": 400})

    @classmethod
    def fit(cls, x: sp.csr_matrix, **params: Any) -> ItemKNN:
        from implicit.nearest_neighbours import CosineRecommender
        from implicit.utils import ParameterWarning

        model = CosineRecommender(K=int(params["neighbours"]))
        with warnings.catch_warnings():
            # CosineRecommender hands its own normalised COO copy on, and then warns about it.
            warnings.simplefilter("ignore", ParameterWarning)
            model.fit(x, show_progress=False)
        similarity = sp.csr_matrix(model.similarity, dtype=np.float32)
        similarity.setdiag(0.0)
        similarity.eliminate_zeros()
        return cls.of_weights(similarity, np.arange(x.shape[1]), x.shape[1])


class RP3beta(ItemItem):
    """RP3beta (Paudel et al. 2017): three-step random walks movie → viewer → movie, each
    transition raised to ``alpha`` and each weight divided by the destination's popularity to
    the power ``beta``; each movie keeps its ``neighbours`` strongest. One sparse product: cheap,
    and hard to beat on sparse data. Like EASE it covers the ``max_movies`` most-watched, which
    bounds the product at max_movies² weights."""

    name = "rp3beta"
    defaults = {"alpha": 1.0, "beta": 0.5, "neighbours": 200, "max_movies": 5000}
    grid = ({}, {"beta": 0.3}, {"beta": 0.7})

    @classmethod
    def fit(cls, x: sp.csr_matrix, **params: Any) -> RP3beta:
        alpha, beta = float(params["alpha"]), float(params["beta"])
        kept, counts = _most_watched(x, int(params["max_movies"]))
        part = sp.csr_matrix(x[:, kept], dtype=np.float32)
        viewer_degree = np.asarray(part.sum(axis=1)).ravel()
        to_movie = sp.csr_matrix(sp.diags(1.0 / np.maximum(viewer_degree, 1.0)) @ part)  # viewer → movie
        to_viewer = sp.csr_matrix(sp.diags(1.0 / np.maximum(counts[kept], 1.0)) @ part.T)  # movie → viewer
        to_movie.data **= alpha
        to_viewer.data **= alpha
        walk = (to_viewer @ to_movie).toarray().astype(np.float32)
        walk /= (np.maximum(counts[kept], 1.0) ** beta).astype(np.float32)[np.newaxis, :]
        walk[np.diag_indices_from(walk)] = 0.0
        return cls.of_weights(_prune(walk, int(params["neighbours"])), kept, x.shape[1])


class Factors(Ranker):
    """Scores by movie and viewer factors; a changed history is folded in as ALS does."""

    kind = "factors"

    def score_rows(self, x: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.arrays["viewer_factors"][rows] @ self.arrays["movie_factors"].T
        return scores

    def score_history(self, columns: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.arrays["movie_factors"] @ self.fold_in(columns)
        return scores

    def fold_in(self, columns: np.ndarray) -> np.ndarray:
        """A viewer's factors from their history, as ALS computes them (implicit's
        ``user_linear_equation``): (YᵀY + reg·I + Σ (c-1) y yᵀ) x = Σ c y, with c the confidence
        of a watch. ``fold_in`` holds (c, reg), and a third value of 1 where reg is scaled by the
        history's length, as Spark's ALS-WR does."""
        factors = self.arrays["movie_factors"][columns].astype(np.float64)
        alpha, regularization, *scaled = (float(value) for value in self.arrays["fold_in"])
        if scaled and scaled[0]:
            regularization *= len(columns)
        a = self.arrays["gram"] + regularization * np.eye(factors.shape[1]) + (alpha - 1.0) * (factors.T @ factors)
        b = alpha * factors.sum(axis=0)
        solved: np.ndarray = np.linalg.solve(a, b).astype(np.float32)
        return solved


class ALS(Factors):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008) from ``implicit``, multithreaded."""

    name = "als"
    # From a grid on MovieLens-100K (factors 32-128, alpha 1-20, regularization 0.05-100):
    # 0.480; implicit's defaults (100 factors, regularization 0.01, alpha 1) reach about 0.29.
    defaults = {"factors": 64, "regularization": 20.0, "iterations": 15, "alpha": 2.0, "seed": 42}
    grid = ({}, {"regularization": 2.0}, {"regularization": 100.0})

    @classmethod
    def fit(cls, x: sp.csr_matrix, **params: Any) -> ALS:
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        alpha, regularization = float(params["alpha"]), float(params["regularization"])
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads would fight them
            model = AlternatingLeastSquares(
                factors=int(params["factors"]),
                regularization=regularization,
                iterations=int(params["iterations"]),
                alpha=alpha,
                random_state=int(params.get("seed", 42)),
            )
            model.fit(x, show_progress=False)
        movie_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        arrays: dict[str, np.ndarray] = {
            "movie_factors": movie_factors,
            "viewer_factors": np.ascontiguousarray(model.user_factors, dtype=np.float32),
            "gram": (movie_factors.T.astype(np.float64) @ movie_factors),
            "fold_in": np.array([alpha, regularization], dtype=np.float64),
        }
        return cls(arrays, x.shape[1])


class SparkALS(Factors):
    """Implicit-feedback ALS on Spark MLlib (``TRAINING_ENGINE=spark``; recommender.learning.spark),
    for data past one machine. Not a candidate of model selection, which fits on one machine."""

    name = "spark-als"
    # Spark's confidence is 1 + alpha (ALS's is alpha) and its regularization is scaled by each
    # viewer's interactions. On a generated taste world (1,500 viewers, 150 movies, 15,000
    # watches): NDCG@10 0.505 against ALS's 0.508; regularization 0.3 or 3 (alpha 1) reached 0.35
    # and 0.05, and 3 with alpha 5 0.499.
    defaults = {"factors": 64, "regularization": 1.0, "iterations": 15, "alpha": 1.0, "seed": 42}

    @classmethod
    def fit(cls, x: sp.csr_matrix, **params: Any) -> SparkALS:
        from recommender.learning.spark import als_implicit

        alpha, regularization = float(params["alpha"]), float(params["regularization"])
        viewer_factors, movie_factors = als_implicit(
            x,
            factors=int(params["factors"]),
            regularization=regularization,
            iterations=int(params["iterations"]),
            alpha=alpha,
            seed=int(params.get("seed", 42)),
        )
        arrays: dict[str, np.ndarray] = {
            "movie_factors": movie_factors,
            "viewer_factors": viewer_factors,
            "gram": (movie_factors.T.astype(np.float64) @ movie_factors),
            "fold_in": np.array([1.0 + alpha, regularization, 1.0], dtype=np.float64),
        }
        return cls(arrays, x.shape[1])


class Popularity(Ranker):
    """How many viewers watched each movie: the same list for everyone, and the baseline every
    personal ranker has to beat."""

    name = "popularity"
    kind = "popularity"
    personal = False

    @classmethod
    def fit(cls, x: sp.csr_matrix, **params: Any) -> Popularity:
        return cls({"popularity": np.asarray(x.sum(axis=0), dtype=np.float32).ravel()}, x.shape[1])

    def score_rows(self, x: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.arrays["popularity"], (len(rows), self.movies)).astype(np.float32)

    def score_history(self, columns: np.ndarray) -> np.ndarray:
        return np.array(self.arrays["popularity"], dtype=np.float32)

    def top_rows(self, x: sp.csr_matrix, rows: np.ndarray, n: int) -> np.ndarray:
        """Scores only the most popular ``n`` plus as many as the batch's most active viewer has seen."""
        seen = x[rows]
        deepest = int(np.diff(seen.indptr).max()) if seen.shape[0] else 0
        columns = np.argsort(-self.arrays["popularity"], kind="stable")[: n + deepest]
        scores = np.broadcast_to(self.arrays["popularity"][columns], (len(rows), len(columns)))
        top = top_n(scores, seen[:, columns], n)
        return np.where(top >= 0, columns[np.maximum(top, 0)], -1).astype(np.int32)


def _most_watched(x: sp.csr_matrix, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The columns of the ``count`` most-watched movies (ties to the lower column), sorted, and
    every movie's count: the head of the catalogue EASE and RP3beta cover."""
    counts = np.asarray(x.sum(axis=0)).ravel()
    watched = np.flatnonzero(counts > 0)
    kept: np.ndarray = np.sort(watched[np.argsort(-counts[watched], kind="stable")[:count]])
    return kept, counts


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


# The rankers training can fit, by name; a new one is a class above and a line here.
RANKERS: dict[str, type[Ranker]] = {ranker.name: ranker for ranker in (EASE, ALS, ItemKNN, RP3beta, Popularity)}
# Every ranker a training may name: model selection's, and the engines' own.
NAMED_RANKERS: dict[str, type[Ranker]] = {**RANKERS, SparkALS.name: SparkALS}
# How an artifact's arrays are scored, by the kind it records.
SCORING: dict[str, type[Ranker]] = {ranker.kind: ranker for ranker in (ItemItem, Factors, Popularity)}
# TRAIN_RANKER's value that lets model selection choose among RANKERS.
SELECT = "auto"


def ranker_named(name: str) -> type[Ranker]:
    try:
        return NAMED_RANKERS[name]
    except KeyError:
        raise ValueError(f"unknown ranker {name!r}: use one of {', '.join(NAMED_RANKERS)}") from None


def ranker_of_arrays(kind: str, arrays: dict[str, np.ndarray], movies: int) -> Ranker:
    """The fitted ranker an artifact stores, scored by the class of its kind."""
    try:
        return SCORING[kind](arrays, movies)
    except KeyError:
        raise ValueError(f"unknown ranker kind {kind!r}: use one of {', '.join(SCORING)}") from None


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


def top_for_rows(model: Ranker, x: sp.csr_matrix, rows: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best unseen movies for each of ``rows``, scored a batch at a time."""
    n = min(n, x.shape[1])
    top = np.full((len(rows), n), -1, dtype=np.int32)
    done = 0
    for batch in batches(rows):
        found = model.top_rows(x, batch, n)
        top[done : done + len(batch), : found.shape[1]] = found
        done += len(batch)
    return top
