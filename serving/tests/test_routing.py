import pytest

from provenance.recorder import recorder
from recommender.models import ModelVersion
from recommender.services import model_train, model_version_set_canary_weight, model_version_set_status
from serving.router import router, traffic_bucket


@pytest.fixture
def canary(trained_version):
    """The registry as a running release leaves it: a second version in canary at 20%."""
    router.reset()
    recorder.clear()
    candidate = model_train(actor="test")
    model_version_set_status(version=candidate, status=ModelVersion.Status.CANARY, actor="test")
    model_version_set_canary_weight(version=candidate, weight=20)
    router.refresh()
    yield candidate
    router.reset()
    recorder.clear()


def test_traffic_buckets_are_stable_and_even():
    buckets = [traffic_bucket(viewer) for viewer in range(1, 20_001)]

    assert buckets == [traffic_bucket(viewer) for viewer in range(1, 20_001)]
    share_under_20 = sum(bucket < 20 for bucket in buckets) / len(buckets)
    assert 0.18 < share_under_20 < 0.22


def test_embedded_mode_sends_the_weight_of_viewers_to_the_canary(client, canary):
    pools = {viewer: client.get(f"/recommend/{viewer}")["X-Release-Pool"] for viewer in range(1, 1001)}

    canary_share = sum(pool == "canary" for pool in pools.values()) / len(pools)
    assert 0.15 < canary_share < 0.25
    # A viewer sees one version consistently.
    assert all(client.get(f"/recommend/{viewer}")["X-Release-Pool"] == pools[viewer] for viewer in range(1, 51))
    canary_viewer = next(viewer for viewer, pool in pools.items() if pool == "canary")
    assert client.get(f"/recommend/{canary_viewer}")["X-Model-Version"] == str(canary.version)


def test_a_weight_of_zero_sends_everyone_to_stable(client, canary):
    model_version_set_canary_weight(version=canary, weight=0)

    router.refresh()

    assert {client.get(f"/recommend/{viewer}")["X-Release-Pool"] for viewer in range(1, 201)} == {"stable"}


def test_nginx_mode_serves_only_this_process_pool(client, canary, settings):
    settings.RELEASE_MODE = "nginx"
    settings.SERVING_POOL = "canary"
    router.reset()

    response = client.get("/recommend/5")

    assert response["X-Release-Pool"] == "canary"
    assert response["X-Model-Version"] == str(canary.version)
