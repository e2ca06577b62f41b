import numpy as np
import pytest

from recommender.learning.pipeline import train_and_evaluate
from recommender.learning.ranking import EASE, RANKERS
from recommender.learning.selection import candidate_grid, ranker_select
from recommender.learning.worlds import taste_world


def _world(taste_strength: float):
    return taste_world(viewers=1500, movies=150, interactions=15000, taste_strength=taste_strength, seed=1)


def test_selection_chooses_popularity_when_nobody_has_a_taste():
    # Every watch is drawn from the catalogue's popularity alone: no model can know more.
    models = train_and_evaluate(interactions=_world(0.0), demographics={})

    selection = models.metrics["selection"]
    assert selection["chosen"]["ranker"] == "popularity"
    assert models.ranker == "popularity"
    assert models.metrics["ndcg@10"] == models.metrics["popularity"]["ndcg@10"]
    assert len(selection["candidates"]) == sum(len(ranker.grid) for ranker in RANKERS.values())


def test_selection_chooses_a_personal_ranker_when_viewers_have_tastes():
    models = train_and_evaluate(interactions=_world(0.8), demographics={})

    chosen = models.metrics["selection"]["chosen"]
    assert chosen["ranker"] != "popularity"
    assert RANKERS[chosen["ranker"]].parameters(chosen["params"]) == models.ranker_params
    # What it chose on validation also wins on the held-out split it never saw.
    assert models.metrics["ndcg@10"] > 1.5 * models.metrics["popularity"]["ndcg@10"]


def test_candidates_run_in_rounds_with_popularity_first():
    grid = candidate_grid(["ease", "popularity", "itemknn"])

    assert [name for name, _ in grid] == ["popularity", "ease", "itemknn", "ease", "itemknn", "ease", "ease", "ease"]
    assert grid[1][1] == EASE.defaults
    assert grid[3][1] == EASE.parameters(EASE.grid[1])


def test_a_spent_budget_runs_the_first_two_and_records_what_it_skipped():
    x = _matrix(_world(0.8))

    selection = ranker_select(x, x, np.arange(50), names=["popularity", "ease"], budget_seconds=0.0)

    assert [candidate.ranker for candidate in selection.candidates] == ["popularity", "ease"]
    assert len(selection.skipped) == len(EASE.grid) - 1
    assert selection.describe()["skipped"][0] == {"ranker": "ease", "params": EASE.parameters(EASE.grid[1])}


def test_a_candidate_the_data_cannot_take_is_left_out_with_its_reason(monkeypatch):
    def singular(cls, /, x, **params):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(EASE, "fit", classmethod(singular))
    x = _matrix(_world(0.8))

    selection = ranker_select(x, x, np.arange(200), names=["popularity", "ease"], budget_seconds=60)

    assert selection.chosen.ranker == "popularity"
    failed = [candidate for candidate in selection.describe()["candidates"] if "error" in candidate]
    assert len(failed) == len(EASE.grid)
    assert failed[0]["error"] == "LinAlgError: Singular matrix"


def _matrix(interactions):
    from recommender.learning.ranking import Index

    return Index.of(interactions).matrix(interactions)


@pytest.mark.parametrize("strength", [0.0, 0.8])
def test_the_world_generator_is_fixed_by_its_seed(strength):
    first, again = _world(strength), _world(strength)

    assert (first.viewers == again.viewers).all()
    assert (first.movies == again.movies).all()
    assert 0.5 * 15000 < len(first) <= 15000 * 1.15


def test_a_winner_below_popularity_on_the_held_out_split_gives_way_to_popularity(monkeypatch):
    from recommender.learning import pipeline
    from recommender.learning.selection import Candidate, Selection

    # A validation win by chance: ALS with little regularisation, on data with no tastes.
    weak = RANKERS["als"].parameters({"regularization": 0.01, "factors": 32})
    lucky = Selection([Candidate("als", weak, {"ndcg@10": 0.9}, 0.1)], [], 60.0, 100)
    monkeypatch.setattr(pipeline, "ranker_select", lambda *args, **kwargs: lucky)

    models = train_and_evaluate(interactions=_world(0.0), demographics={})

    assert models.ranker == "popularity"
    assert models.metrics["ndcg@10"] == models.metrics["popularity"]["ndcg@10"]
    fallback = models.metrics["selection"]["fallback"]
    assert fallback["ranker"] == "als"
    assert fallback["ndcg"] < models.metrics["popularity"]["ndcg@10"]


def test_a_ranker_whose_library_will_not_load_is_left_out_and_training_goes_on(monkeypatch):
    from recommender.learning.ranking import ALS

    def unloadable(cls, /, x, **params):
        raise ImportError("libgomp.so.1: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(ALS, "fit", classmethod(unloadable))

    models = train_and_evaluate(interactions=_world(0.8), demographics={})

    assert models.ranker != "als"
    failed = [c for c in models.metrics["selection"]["candidates"] if c["ranker"] == "als"]
    assert all(c["error"].startswith("ImportError: libgomp.so.1") for c in failed)
