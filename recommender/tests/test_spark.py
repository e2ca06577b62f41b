"""The Spark training engine in local mode (pyspark from requirements-spark.txt, Java 17): its
models measured against the one-process models on the same data, and its artifact served by the
same code. One training on each engine, shared by the tests (a Spark training is about a minute
here, most of it the JVM's start and Spark's scheduling)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recommender.artifacts import Artifact, artifact_build, artifact_load, artifact_write, predict_rating
from recommender.learning.pipeline import TrainedModels, train_and_evaluate
from recommender.learning.ranking import SparkALS
from recommender.learning.spark import SparkALSRating
from recommender.learning.worlds import taste_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained() -> dict[str, TrainedModels]:
    world = taste_world(viewers=1500, movies=150, interactions=15000, taste_strength=0.8, seed=1)
    return {
        "local": train_and_evaluate(interactions=world, demographics={}, rating_algorithm="svd", ranker="als"),
        "spark": train_and_evaluate(
            interactions=world, demographics={}, rating_algorithm="spark-als", ranker="spark-als"
        ),
    }


def test_spark_als_ranks_and_rates_as_well_as_implicits_als_and_surprises_svd(trained: dict[str, Any]) -> None:
    local, spark = trained["local"].metrics, trained["spark"].metrics

    assert isinstance(trained["spark"].ranker_model, SparkALS)
    assert isinstance(trained["spark"].rating, SparkALSRating)
    # The same held-out split: on it, both engines' figures are within a few per cent.
    assert spark["ndcg@10"] > 2 * spark["popularity"]["ndcg@10"]
    assert spark["ndcg@10"] == pytest.approx(local["ndcg@10"], abs=0.03)
    assert spark["rmse"] == pytest.approx(local["rmse"], abs=0.03)


def test_a_changed_history_is_folded_in_by_sparks_own_equations(trained: dict[str, Any]) -> None:
    # Spark solves each viewer's factors last, from the movies' final factors: folding in the
    # same history gives them back, confidence 1 + alpha and regularization scaled by its length.
    model, seen = trained["spark"].ranker_model, trained["spark"].seen
    rows = np.flatnonzero(np.diff(seen.indptr) > 0)[:100]

    folded = np.stack([model.fold_in(seen[row].indices) for row in rows])

    np.testing.assert_allclose(folded, model.arrays["viewer_factors"][rows], atol=1e-4)


def test_the_spark_models_artifact_is_served_by_the_same_code(trained: dict[str, Any], tmp_path: Any) -> None:
    models = trained["spark"]
    meta, arrays = artifact_build(models, demographics={}, meta={"version": 1})
    sha256, _ = artifact_write(tmp_path / "v1", meta=meta, arrays=arrays)
    artifact: Artifact = artifact_load(tmp_path / "v1", sha256=sha256)
    viewer, movie = 5, 7
    row = int(np.searchsorted(models.index.viewers, viewer))

    assert artifact.meta["ranker_kind"] == "factors"
    np.testing.assert_array_equal(artifact.ranker().top_rows(models.seen, np.array([row]), 20)[0], models.top[row, :20])
    # The rating model's own estimate (surprise's predict, clipped to 1-5 as serving's is).
    assert predict_rating(artifact, viewer_row=row, movie_column=movie) == pytest.approx(
        models.rating.predict(viewer, movie).est, abs=1e-4
    )
