"""The factor models on Spark MLlib (``TRAINING_ENGINE=spark``), for data one machine cannot fit.

``pyspark``'s ``ALS`` fits the two factor models, and their factors come back as the arrays the
one-process models write, so the artifact, serving and everything after them do not change:

- **the ranker**, ``spark-als`` (``ranking.SparkALS``): implicit-feedback ALS on the binary
  viewer-by-movie matrix. Spark's confidence is ``1 + alpha`` and its regularization is scaled
  by each viewer's number of interactions ("ALS-WR"): the artifact's ``fold_in`` says so, and a
  changed history is folded in by Spark's own equations;
- **the rating model**, ``spark-als`` (``SparkALSRating``): the baselines (a global mean, then
  regularized movie and viewer means, as scikit-surprise's baseline) computed here, and explicit
  ALS on what they leave. Its biases and factors are the SVD's attributes, read into the artifact
  by the same code.

Spark runs in local mode on this machine and in CI (``SPARK_MASTER=local[2]``), and on a cluster
with ``SPARK_MASTER=spark://host:7077`` (docs/scaling.md). pyspark is an extra install
(``requirements-spark.txt``): ``make demo`` never needs it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import scipy.sparse as sp
from surprise import AlgoBase, PredictionImpossible

# Spark's own parameter names, the one-process models' values where they mean the same.
SPARK_ALS_RATING_DEFAULTS: dict[str, Any] = {
    "rank": 50,
    "max_iter": 15,
    "reg_param": 0.08,
    "reg_movie": 10.0,
    "reg_viewer": 15.0,
}


PYSPARK_MISSING = "TRAINING_ENGINE=spark needs pyspark: pip install -r requirements-spark.txt (make venv-spark)"


class SparkUnavailable(RuntimeError):
    """pyspark or Java is missing; the message says what to install."""


def spark_session() -> Any:
    """The session (one per process, reused): ``SPARK_MASTER``, ``SPARK_DRIVER_MEMORY`` and
    ``SPARK_LOCAL_DIR`` from the settings; on this machine every address is the loopback's."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise SparkUnavailable(PYSPARK_MISSING) from error
    from django.conf import settings

    if settings.SPARK_MASTER.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(settings.SPARK_MASTER)
        .appName("recsite-training")
        .config("spark.driver.memory", settings.SPARK_DRIVER_MEMORY)
        .config("spark.local.dir", str(settings.SPARK_LOCAL_DIR))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(settings.SPARK_PARTITIONS))
        # Arrow moves the interactions in and the factors out as columns, not as Python rows.
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if settings.SPARK_MASTER.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    # py4j logs each connection it opens and closes, at info.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return session


def _frame(rows: np.ndarray, columns: np.ndarray, values: np.ndarray) -> Any:
    """(viewer row, movie column, value) triples as a Spark DataFrame, spread over the partitions."""
    import pandas as pd
    from django.conf import settings

    table = pd.DataFrame(
        {"user": rows.astype(np.int32), "item": columns.astype(np.int32), "rating": values.astype(np.float32)}
    )
    return spark_session().createDataFrame(table).repartition(settings.SPARK_PARTITIONS)


def _factors(frame: Any, count: int, rank: int) -> np.ndarray:
    """A factor DataFrame (``id``, ``features``) as rows ``0..count-1``; ids Spark never saw (no
    interaction in the fit) keep zeros."""
    table = frame.toPandas()
    factors = np.zeros((count, rank), dtype=np.float32)
    if len(table):
        factors[table["id"].to_numpy()] = np.stack(table["features"].to_numpy()).astype(np.float32)
    return factors


def als_implicit(
    x: sp.csr_matrix, *, factors: int, regularization: float, iterations: int, alpha: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Viewer and movie factors of implicit ALS on the binary matrix ``x``."""
    from pyspark.ml.recommendation import ALS

    coo = x.tocoo()
    frame = _frame(coo.row, coo.col, np.ones(len(coo.row), np.float32))  # starts the session ALS needs
    model = ALS(
        rank=factors,
        maxIter=iterations,
        regParam=regularization,
        alpha=alpha,
        implicitPrefs=True,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        seed=seed,
        nonnegative=False,
        coldStartStrategy="drop",
    ).fit(frame)
    return _factors(model.userFactors, x.shape[0], factors), _factors(model.itemFactors, x.shape[1], factors)


class SparkALSRating(AlgoBase):  # type: ignore[misc]  # scikit-surprise ships no type information
    """Explicit ALS on Spark over baselines computed here: ``mu + bu + bi + pu · qi``, the SVD's
    form, in its attributes (``bu``, ``bi``, ``pu``, ``qi``, by the trainset's inner ids)."""

    def __init__(
        self,
        rank: int,
        max_iter: int,
        reg_param: float,
        reg_movie: float,
        reg_viewer: float,
        random_state: int = 0,
    ) -> None:
        super().__init__()
        self.rank, self.max_iter, self.reg_param = rank, max_iter, reg_param
        self.reg_movie, self.reg_viewer, self.random_state = reg_movie, reg_viewer, random_state

    def fit(self, trainset: Any) -> SparkALSRating:
        from pyspark.ml.recommendation import ALS

        super().fit(trainset)
        triples = np.array(list(trainset.all_ratings()), dtype=np.float64).reshape(-1, 3)
        users, items, ratings = triples[:, 0].astype(np.int64), triples[:, 1].astype(np.int64), triples[:, 2]
        mu = float(trainset.global_mean)
        # The baselines as surprise's first ALS sweep: movies' regularized mean offsets, then
        # viewers' over what the movies leave.
        self.bi = np.bincount(items, ratings - mu, trainset.n_items) / (
            self.reg_movie + np.bincount(items, minlength=trainset.n_items)
        )
        self.bu = np.bincount(users, ratings - mu - self.bi[items], trainset.n_users) / (
            self.reg_viewer + np.bincount(users, minlength=trainset.n_users)
        )
        frame = _frame(users, items, ratings - mu - self.bi[items] - self.bu[users])
        model = ALS(
            rank=self.rank,
            maxIter=self.max_iter,
            regParam=self.reg_param,
            implicitPrefs=False,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=self.random_state,
        ).fit(frame)
        self.pu = _factors(model.userFactors, trainset.n_users, self.rank).astype(np.float64)
        self.qi = _factors(model.itemFactors, trainset.n_items, self.rank).astype(np.float64)
        return self

    def estimate(self, u: int, i: int) -> float:
        known_user, known_item = self.trainset.knows_user(u), self.trainset.knows_item(i)
        if not (known_user or known_item):
            raise PredictionImpossible("viewer and movie are unknown")
        estimate = float(self.trainset.global_mean)
        if known_user:
            estimate += float(self.bu[u])
        if known_item:
            estimate += float(self.bi[i])
        if known_user and known_item:
            estimate += float(self.pu[u] @ self.qi[i])
        return estimate
