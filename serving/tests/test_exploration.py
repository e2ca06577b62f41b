import pytest

from provenance.models import Recommendation
from provenance.recorder import recorder
from serving.router import router

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


@pytest.fixture
def serving_model(trained_version):
    router.refresh()
    return router.route(None)[1]


def _known_viewer(model) -> int:
    return int(model.artifact["viewers"][0])


def test_exploration_is_off_by_default(client, serving_model):
    body = client.get(f"/recommend/{_known_viewer(serving_model)}", HTTP_ACCEPT="application/json").json()

    assert body["explored"] == []


def test_explored_slots_hold_relevant_rarely_shown_movies_and_are_recorded(client, settings, serving_model):
    settings.SERVING_EXPLORATION_SLOTS = 3
    viewer = _known_viewer(serving_model)
    row = serving_model.viewer_row(viewer)
    ranked = [serving_model.movies[c] for c in serving_model.artifact["top"][row].tolist() if c >= 0]

    body = client.get(f"/recommend/{viewer}", HTTP_ACCEPT="application/json").json()
    recorder.flush()

    explored = body["explored"]
    assert len(explored) == 3
    assert body["items"][-3:] == explored  # the last places
    assert len(set(body["items"])) == len(body["items"]) == 20
    beyond = [movie for movie in ranked if movie not in body["items"][:-3]]
    assert set(explored) <= set(beyond)  # ranked for this viewer, beyond what the list held
    # ... and among the less-shown half of those.
    exposure = {movie: int(serving_model.exposure[serving_model.movie_index[movie]]) for movie in beyond}
    least_shown = sorted(beyond, key=lambda movie: (exposure[movie], serving_model.movie_index[movie]))
    assert set(explored) <= set(least_shown[: max(3, len(beyond) // 2)])
    row = Recommendation.objects.get(request_id=body["request_id"])
    assert row.explored_list == explored


def test_the_same_request_explores_the_same_way_and_another_may_not(serving_model):
    from serving.store import Answer

    viewer = _known_viewer(serving_model)
    base = serving_model.recommend(viewer_id=viewer, history=set(), finished=set(), demographics=None, count=20)
    assert base.strategy == "personalized"

    first = serving_model.explore(base, viewer_id=viewer, request_id="r-1", slots=4)
    again = serving_model.explore(base, viewer_id=viewer, request_id="r-1", slots=4)
    others = {
        tuple(serving_model.explore(base, viewer_id=viewer, request_id=f"r-{n}", slots=4).explored) for n in range(20)
    }

    assert first == again
    assert len(others) > 1
    assert isinstance(first, Answer)


def test_a_cold_answer_is_not_explored(serving_model):
    cold = serving_model.recommend(viewer_id=2_000_000_000, history=set(), finished=set(), demographics=None, count=20)

    assert serving_model.explore(cold, viewer_id=2_000_000_000, request_id="r", slots=3).explored == []
