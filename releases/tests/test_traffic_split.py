"""A release's decisions reach serving through the registry (embedded mode, the demo)."""

import pytest

from provenance.recorder import recorder
from recommender.models import ModelVersion
from recommender.services import model_train
from releases.services import release_abort, release_pause, release_start
from serving.router import router


@pytest.fixture
def canary_release(candidate_version):
    router.reset()
    recorder.clear()
    release = release_start(candidate=candidate_version, steps=[20])
    router.refresh()
    yield release
    router.reset()
    recorder.clear()


@pytest.fixture
def candidate_version(trained_version) -> ModelVersion:
    return model_train(actor="test")


def _pools(client, viewers=range(1, 201)) -> set[str]:
    return {client.get(f"/recommend/{viewer}")["X-Release-Pool"] for viewer in viewers}


def test_starting_a_release_gives_the_canary_its_weight(client, canary_release):
    canary_release.candidate.refresh_from_db()

    assert canary_release.candidate.canary_weight == 20
    assert _pools(client) == {"stable", "canary"}


def test_a_paused_release_keeps_its_weight(client, canary_release):
    release_pause(release=canary_release, actor="test")
    router.refresh()

    canary_release.candidate.refresh_from_db()
    assert canary_release.candidate.canary_weight == 20
    assert "canary" in _pools(client)


def test_aborting_returns_all_traffic_to_stable(client, canary_release):
    release_abort(release=canary_release, actor="test", reason="test")

    router.refresh()

    canary_release.candidate.refresh_from_db()
    assert canary_release.candidate.canary_weight == 0
    assert _pools(client) == {"stable"}
    assert router.stores["canary"].current is None


def test_nginx_weights_give_each_pool_its_share_however_many_servers_it_has(settings):
    from releases.traffic import upstreams_render

    settings.NGINX_STABLE_SERVERS = ["web-stable-1:8082", "web-stable-2:8082"]
    settings.NGINX_CANARY_SERVERS = ["web-canary:8082"]

    at_20 = upstreams_render(canary_weight=20)
    at_0 = upstreams_render(canary_weight=0)

    # Two stable servers at 80 and one canary at 40: the canary takes 40 of 200 requests.
    assert "server web-stable-1:8082 weight=80 " in at_20
    assert "server web-stable-2:8082 weight=80 " in at_20
    assert "server web-canary:8082 weight=40 " in at_20
    assert "server web-canary:8082 backup " in at_0
    assert "server web-stable-1:8082 weight=100 " in at_0
