"""A loaded artifact answers for every ranker kind, from memory-mapped arrays."""

import numpy as np
import pytest

from recommender.artifacts import artifact_build, artifact_load, artifact_write
from recommender.learning.pipeline import train_and_evaluate
from recommender.learning.splitting import Interaction, Interactions
from serving.store import ServingModel


def _serving_model(tmp_path, ranker):
    rng = np.random.default_rng(0)
    records = [
        Interaction(viewer, f"m{movie:02d}", int(rng.integers(1, 6)))
        for viewer in range(1, 41)
        for movie in range(30)
        if rng.random() < (0.6 if (movie < 15) == (viewer % 2 == 0) else 0.05)  # two tastes
    ]
    demographics: dict[int, tuple[int | None, str, str]] = {
        viewer: (30, "F" if viewer % 2 else "M", "writer") for viewer in range(1, 41)
    }
    # ALS's default regularisation is sized for thousands of viewers, not forty.
    parameters = {"factors": 8, "regularization": 1.0} if ranker == "als" else None
    models = train_and_evaluate(
        interactions=Interactions.from_records(records),
        demographics=demographics,
        ranker=ranker,
        ranker_params=parameters,
        seed=1,
    )
    meta, arrays = artifact_build(models, demographics=demographics, meta={"version": 1})
    sha256, _ = artifact_write(tmp_path / "v1", meta=meta, arrays=arrays)
    return ServingModel(version=1, version_id=1, artifact=artifact_load(tmp_path / "v1", sha256=sha256))


@pytest.mark.parametrize("ranker", ["ease", "als", "itemknn", "popularity"])
def test_each_ranker_answers_known_new_and_cold_viewers(tmp_path, ranker):
    model = _serving_model(tmp_path, ranker)

    known = model.recommend(viewer_id=2, history=set(), finished=set(), demographics=None, count=5)
    # A newcomer who watched three first-taste movies (m00-m14 go together for even viewers).
    history = {"m00", "m01", "m02"}
    new = model.recommend(viewer_id=999, history=history, finished=history, demographics=None, count=5)
    cold = model.recommend(viewer_id=998, history=set(), finished=set(), demographics=(30, "F"), count=5)

    assert known.strategy == "personalized"
    assert len(known.items) == 5
    assert not set(new.items) & history
    assert len(new.items) == 5
    if ranker == "popularity":
        assert new.strategy == "cold-start"  # popularity learns nothing from a history
    else:
        assert new.strategy == "history"
        assert sum(item < "m15" for item in new.items) >= 4  # the newcomer's taste
    assert cold.strategy == "cold-start"
    assert len(cold.items) == 5


def test_a_known_viewer_is_found_by_binary_search_and_a_stranger_is_not(tmp_path):
    model = _serving_model(tmp_path, "ease")

    assert model.viewer_row(1) == 0
    assert model.viewer_row(40) == 39
    assert model.viewer_row(41) is None
    assert model.viewer_row(0) is None
    assert isinstance(model.artifact["viewers"], np.memmap)
