import numpy as np
import pytest

from recommender.learning.evaluation import ranking_metrics
from recommender.learning.pipeline import train_and_evaluate
from recommender.learning.ranking import RANKERS, Index, top_n, train_ease
from recommender.learning.rating import RATING_ALGORITHMS
from recommender.learning.splitting import Interaction, split_by_viewer


def _interactions(viewers=30, movies=12):
    rng = np.random.default_rng(0)
    return [
        Interaction(viewer, f"m{movie}", int(rng.integers(1, 6)))
        for viewer in range(1, viewers + 1)
        for movie in range(movies)
        if rng.random() < 0.5
    ]


def test_split_is_fixed_by_its_seed_and_stratified_per_viewer():
    interactions = _interactions()

    first = split_by_viewer(interactions, seed=1)
    again = split_by_viewer(interactions, seed=1)
    other = split_by_viewer(interactions, seed=2)

    assert first.test == again.test
    assert first.test != other.test
    for viewer in {i.viewer for i in interactions}:
        total = sum(1 for i in interactions if i.viewer == viewer)
        held_out = sum(1 for i in first.test if i.viewer == viewer)
        assert held_out == (round(total * 0.25) if total > 1 else 0)


def test_ranking_metrics_match_a_hand_computed_case():
    # Viewer 0: relevant {1, 3}; ranked [1, 2, 3]: hits at ranks 1 and 3.
    top = np.array([[1, 2, 3, *range(10, 27)]])

    metrics = ranking_metrics(top, [{1, 3}], cutoffs=(10,))

    dcg = 1 + 1 / np.log2(4)
    ideal = 1 + 1 / np.log2(3)
    assert metrics["precision@10"] == pytest.approx(0.2)
    assert metrics["recall@10"] == pytest.approx(1.0)
    assert metrics["ndcg@10"] == pytest.approx(dcg / ideal, abs=1e-5)


def test_top_n_never_returns_what_the_viewer_has_seen():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    seen = np.array([[1, 0, 1, 0, 0]])

    assert top_n(scores, seen, 2).tolist() == [[1, 3]]


def test_ease_learns_items_that_go_together():
    # Movies 0 and 1 are always watched together, 2 and 3 together.
    x = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=np.float32)

    weights = train_ease(x, l2=0.5)

    assert np.all(np.diag(weights) == 0)
    assert weights[0, 1] > weights[0, 2]
    assert weights[2, 3] > weights[2, 1]


def test_index_matrix_marks_interactions():
    index = Index(viewers=[5, 9], movies=["a", "b"])

    x = index.matrix([Interaction(9, "b", None)])

    assert x.tolist() == [[0, 0], [0, 1]]


def test_training_reports_every_metric_and_the_popularity_baseline():
    models = train_and_evaluate(
        interactions=_interactions(), demographics={1: (20, "F", "writer")}, catalogue=["m0", "m99"], seed=3
    )

    for name in ("rmse", "mae", "precision@10", "recall@10", "ndcg@10", "precision@20", "recall@20", "ndcg@20"):
        assert name in models.metrics
    assert "ndcg@10" in models.metrics["popularity"]
    assert models.metrics["split"]["seed"] == 3
    assert "m99" in models.index.movies  # catalogue movies nobody watched can still be recommended
    # Viewer 1 is the only woman: her group holds exactly her held-out ratings.
    held_out = [i for i in split_by_viewer(_interactions(), seed=3).test if i.viewer == 1]
    female = models.group_metrics["gender"]["F"]
    assert held_out
    assert (female["ratings"], female["viewers"]) == (len(held_out), 1)


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown rating algorithm 'xgboost'"):
        train_and_evaluate(interactions=_interactions(), demographics={}, catalogue=[], rating_algorithm="xgboost")


@pytest.mark.parametrize("name", sorted(RATING_ALGORITHMS))
def test_every_rating_algorithm_reports_the_parameters_it_ran_with(name):
    models = train_and_evaluate(
        interactions=_interactions(), demographics={}, catalogue=[], rating_algorithm=name, ranker="popularity"
    )

    assert models.rating_params == RATING_ALGORITHMS[name].defaults
    assert models.rating_params  # never {} while the model runs with hidden settings


def test_rating_parameters_given_override_the_registered_defaults():
    models = train_and_evaluate(
        interactions=_interactions(),
        demographics={},
        catalogue=[],
        rating_algorithm="svd",
        rating_params={"n_factors": 7},
        ranker="popularity",
    )

    assert models.rating_params["n_factors"] == 7
    assert models.rating.pu.shape[1] == 7
    assert models.rating_params["n_epochs"] == RATING_ALGORITHMS["svd"].defaults["n_epochs"]


@pytest.mark.parametrize("name", sorted(RANKERS))
def test_every_ranker_is_fitted_and_scored_through_the_registry(name):
    models = train_and_evaluate(interactions=_interactions(), demographics={}, catalogue=[], ranker=name)

    assert models.ranker_params == RANKERS[name].defaults
    assert (models.weights is None) == (name == "popularity")
    assert models.metrics["ndcg@10"] > 0


def test_unknown_ranker_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown ranker 'random': use one of ease, itemknn, popularity"):
        train_and_evaluate(interactions=_interactions(), demographics={}, catalogue=[], ranker="random")
