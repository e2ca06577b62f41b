import numpy as np
import pytest
import scipy.sparse as sp

from recommender.learning.evaluation import ranking_metrics
from recommender.learning.pipeline import train_and_evaluate
from recommender.learning.ranking import ALS, EASE, RANKERS, Index, ItemKNN, Popularity, RP3beta, top_n
from recommender.learning.rating import RATING_ALGORITHMS
from recommender.learning.splitting import Interaction, Interactions, split_by_viewer


def _interactions(viewers=30, movies=12, catalogue=()):
    rng = np.random.default_rng(0)
    return Interactions.from_records(
        (
            Interaction(viewer, f"m{movie}", int(rng.integers(1, 6)))
            for viewer in range(1, viewers + 1)
            for movie in range(movies)
            if rng.random() < 0.5
        ),
        catalogue,
    )


def test_split_is_fixed_by_its_seed_and_stratified_per_viewer():
    interactions = _interactions()

    first = split_by_viewer(interactions, seed=1)
    again = split_by_viewer(interactions, seed=1)
    other = split_by_viewer(interactions, seed=2)

    assert (first.held_out == again.held_out).all()
    assert (first.held_out != other.held_out).any()
    for viewer in set(interactions.viewers.tolist()):
        total = int((interactions.viewers == viewer).sum())
        held_out = int((first.test.viewers == viewer).sum())
        assert held_out == (round(total * 0.25) if total > 1 else 0)


def test_ranking_metrics_match_a_hand_computed_case():
    # Viewer 0: relevant {1, 3}; ranked [1, 2, 3]: hits at ranks 1 and 3.
    top = np.array([[1, 2, 3, *range(10, 27)]])

    relevant = sp.csr_matrix(([1.0, 1.0], ([0, 0], [1, 3])), shape=(1, 30))

    metrics = ranking_metrics(top, relevant, cutoffs=(10,))

    dcg = 1 + 1 / np.log2(4)
    ideal = 1 + 1 / np.log2(3)
    assert metrics["precision@10"] == pytest.approx(0.2)
    assert metrics["recall@10"] == pytest.approx(1.0)
    assert metrics["ndcg@10"] == pytest.approx(dcg / ideal, abs=1e-5)


def test_top_n_never_returns_what_the_viewer_has_seen():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    seen = sp.csr_matrix(np.array([[1, 0, 1, 0, 0]]))

    assert top_n(scores, seen, 2).tolist() == [[1, 3]]
    assert top_n(scores, seen, 5).tolist() == [[1, 3, 4, -1, -1]]  # only three were unseen


def test_ease_learns_items_that_go_together():
    # Movies 0 and 1 are always watched together, 2 and 3 together.
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]], np.float32))

    weights = EASE.fit(x, l2=0.5, max_movies=10, neighbours=10).weights.toarray()

    assert np.all(np.diag(weights) == 0)
    assert weights[0, 1] > weights[0, 2]
    assert weights[2, 3] > weights[2, 1]


def test_index_matrix_marks_interactions():
    index = Index(viewers=np.array([5, 9]), movies=["a", "b"])

    x = index.matrix(Interactions.from_records([Interaction(9, "b", None), Interaction(9, "b", 4)], ["a"]))

    assert x.toarray().tolist() == [[0, 0], [0, 1]]


def test_training_reports_every_metric_and_the_popularity_baseline():
    models = train_and_evaluate(
        interactions=_interactions(catalogue=["m0", "m99"]), demographics={1: (20, "F", "writer")}, seed=3
    )

    for name in ("rmse", "mae", "precision@10", "recall@10", "ndcg@10", "precision@20", "recall@20", "ndcg@20"):
        assert name in models.metrics
    assert "ndcg@10" in models.metrics["popularity"]
    assert models.metrics["split"]["seed"] == 3
    assert "m99" in models.index.movies  # catalogue movies nobody watched can still be recommended
    # Viewer 1 is the only woman: her group holds exactly her held-out ratings.
    held_out = int((split_by_viewer(_interactions(catalogue=["m0", "m99"]), seed=3).test.viewers == 1).sum())
    female = models.group_metrics["gender"]["female"]
    assert held_out
    assert (female["ratings"], female["viewers"]) == (held_out, 1)


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown rating algorithm 'xgboost'"):
        train_and_evaluate(interactions=_interactions(), demographics={}, rating_algorithm="xgboost")


@pytest.mark.parametrize("name", sorted(RATING_ALGORITHMS))
def test_every_rating_algorithm_reports_the_parameters_it_ran_with(name):
    models = train_and_evaluate(
        interactions=_interactions(), demographics={}, rating_algorithm=name, ranker="popularity"
    )

    assert models.rating_params == RATING_ALGORITHMS[name].defaults
    assert models.rating_params  # never {} while the model runs with hidden settings


def test_rating_parameters_given_override_the_registered_defaults():
    models = train_and_evaluate(
        interactions=_interactions(),
        demographics={},
        rating_algorithm="svd",
        rating_params={"n_factors": 7},
        ranker="popularity",
    )

    assert models.rating_params["n_factors"] == 7
    assert models.rating.pu.shape[1] == 7
    assert models.rating_params["n_epochs"] == RATING_ALGORITHMS["svd"].defaults["n_epochs"]


@pytest.mark.parametrize("name", sorted(RANKERS))
def test_every_ranker_is_fitted_and_scored_through_the_registry(name):
    models = train_and_evaluate(interactions=_interactions(), demographics={}, ranker=name)

    assert models.ranker_params == RANKERS[name].defaults
    assert type(models.ranker_model) is RANKERS[name]
    assert "selection" not in models.metrics  # a forced ranker is not selected
    assert models.metrics["ndcg@10"] > 0


def test_unknown_ranker_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown ranker 'random': use one of ease, als, itemknn, rp3beta, popularity"):
        train_and_evaluate(interactions=_interactions(), demographics={}, ranker="random")


# Two tastes: movies 0-2 go together, 3-5 together; movie 0 is the most watched of all.
TASTES = sp.csr_matrix(
    np.array(
        [
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 0, 1, 0, 0, 0],
            [0, 0, 0, 1, 1, 1],
            [0, 0, 0, 1, 1, 1],
            [1, 0, 0, 1, 1, 0],
            [1, 0, 0, 0, 1, 1],
        ],
        dtype=np.float32,
    )
)


SMALL_PARAMETERS: dict[str, dict[str, object]] = {
    "als": {"factors": 2, "iterations": 30, "regularization": 0.1},
    "ease": {"l2": 1.0},
}


def _dense_ease(x, l2):
    gram = x.T @ x + l2 * np.eye(x.shape[1])
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights


def test_ease_matches_the_closed_form_and_keeps_only_the_strongest_neighbours():
    dense = TASTES.toarray().astype(np.float64)

    exact = EASE.fit(TASTES, l2=2.0, max_movies=6, neighbours=6)
    pruned = EASE.fit(TASTES, l2=2.0, max_movies=6, neighbours=2)

    np.testing.assert_allclose(exact.weights.toarray(), _dense_ease(dense, 2.0), atol=1e-6)
    assert (np.diff(pruned.weights.indptr) <= 2).all()
    for row in range(6):  # the two kept are the largest in magnitude of the exact row
        kept = set(pruned.weights[row].indices.tolist())
        assert kept == set(np.argsort(-np.abs(exact.weights.toarray()[row]))[:2].tolist())


def test_ease_restricted_to_the_most_watched_movies_scores_only_those():
    # Movie 0 (6 viewers), then 4 (4); ties between 1, 2 and 5 (3 each) go to the lower column.
    model = EASE.fit(TASTES, l2=2.0, max_movies=3, neighbours=3)

    covered = sorted(set(model.weights.tocoo().row.tolist()) | set(model.weights.tocoo().col.tolist()))
    assert covered == [0, 1, 4]
    dense = TASTES.toarray()[:, [0, 1, 4]].astype(np.float64)
    np.testing.assert_allclose(
        model.weights.toarray()[np.ix_([0, 1, 4], [0, 1, 4])], _dense_ease(dense, 2.0), atol=1e-6
    )


def test_itemknn_is_cosine_similarity_without_the_diagonal():
    dense = TASTES.toarray().astype(np.float64)
    norms = np.sqrt((dense**2).sum(axis=0))
    cosine = dense.T @ dense / np.outer(norms, norms)
    np.fill_diagonal(cosine, 0.0)

    model = ItemKNN.fit(TASTES, neighbours=10)

    np.testing.assert_allclose(model.weights.toarray(), cosine, atol=1e-6)


def test_rp3beta_is_the_three_step_walk_penalised_by_popularity():
    dense = TASTES.toarray().astype(np.float64)
    degree_viewer, degree_movie = dense.sum(axis=1), dense.sum(axis=0)
    walk = (dense / degree_movie[:, None].T).T @ (dense / degree_viewer[:, None])
    walk /= degree_movie[None, :] ** 0.5
    np.fill_diagonal(walk, 0.0)

    model = RP3beta.fit(TASTES, alpha=1.0, beta=0.5, neighbours=10, max_movies=10)

    np.testing.assert_allclose(model.weights.toarray(), walk, atol=1e-6)


def test_popularity_scores_each_movie_by_its_viewers_for_everyone():
    model = Popularity.fit(TASTES)

    assert model.score_history(np.array([3])).tolist() == TASTES.toarray().sum(axis=0).tolist()
    assert not model.personal


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # A viewer who saw 4 and 5 is a second-taste viewer: the rankers that learn tastes put
        # that taste's movie 3 first; popularity puts movie 0, the most watched of all.
        ("ease", 3),
        ("itemknn", 3),
        ("als", 3),
        ("rp3beta", 3),
        ("popularity", 0),
    ],
)
def test_each_ranker_recommends_the_missing_movie_of_a_taste(name, expected):
    params = SMALL_PARAMETERS.get(name, {})
    model = RANKERS[name].fit(TASTES, **RANKERS[name].parameters(params))

    top = model.top_history(np.array([4, 5]), 1)

    assert top.tolist() == [expected]


@pytest.mark.parametrize("name", ["ease", "itemknn", "als", "rp3beta"])
def test_a_viewer_mostly_of_the_second_taste_gets_its_missing_movie_first(name):
    # Viewer 6 saw 0, 3 and 4: the second taste's 5 comes before the first taste's 1 and 2.
    params = SMALL_PARAMETERS.get(name, {})
    model = RANKERS[name].fit(TASTES, **RANKERS[name].parameters(params))

    top = top_n(model.score_rows(TASTES, np.array([6])), TASTES[[6]], 3)

    assert top[0].tolist()[0] == 5


def test_als_fold_in_matches_implicits_recalculation_of_a_viewer():
    from implicit.als import AlternatingLeastSquares

    model = ALS.fit(TASTES, factors=3, regularization=0.1, iterations=10, alpha=5.0)
    reference = AlternatingLeastSquares(factors=3, regularization=0.1, alpha=5.0)
    reference.item_factors = np.array(model.arrays["movie_factors"])
    reference.user_factors = np.array(model.arrays["viewer_factors"])
    history = sp.csr_matrix(([1.0, 1.0], ([0, 0], [1, 2])), shape=(1, 6), dtype=np.float32)

    expected = reference.recalculate_user(0, history)

    np.testing.assert_allclose(model.fold_in(np.array([1, 2])), expected, rtol=1e-3, atol=1e-4)


def test_the_served_models_are_refitted_on_all_the_data():
    interactions = _interactions()

    models = train_and_evaluate(interactions=interactions, demographics={}, seed=3)

    split = split_by_viewer(interactions, seed=3)
    assert models.seen.nnz == len(interactions) > len(split.train)
    assert models.metrics["refit"]["interactions"] == len(interactions)
    # The rating model is the one measured: fitted once, on the training part.
    assert models.trainset.n_ratings == split.train.rating_count()
    # The top lists never hold what a viewer has seen, held-out movies included.
    for row in range(models.seen.shape[0]):
        listed = set(models.top[row].tolist()) - {-1}
        assert listed
        assert not listed & set(models.seen[row].indices.tolist())
    # The holdout figures still come from the model fitted without the held-out quarter.
    assert models.metrics["split"]["test_interactions"] == len(split.test)


@pytest.mark.parametrize("name", sorted(RANKERS))
def test_the_batched_top_lists_are_the_full_scores_top_lists(name):
    # top_rows scores only the movies a ranker can reach; it must agree with scoring them all.
    model = RANKERS[name].fit(TASTES, **RANKERS[name].parameters(SMALL_PARAMETERS.get(name, {})))
    rows = np.arange(TASTES.shape[0])

    fast = model.top_rows(TASTES, rows, 3)

    full = top_n(model.score_rows(TASTES, rows), TASTES, 3)
    scores = model.score_rows(TASTES, rows)
    for row in rows:  # equal scores may come in either order: compare the scores listed
        listed = [c for c in fast[row] if c >= 0]
        assert sorted(scores[row, listed]) == pytest.approx(sorted(scores[row, [c for c in full[row] if c >= 0]]))
