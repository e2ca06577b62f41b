import pytest

from provenance.recorder import recorder
from recommender.models import ModelVersion
from recommender.services import model_train
from recommender.serving import router, traffic_bucket
from releases.services import release_abort, release_start


@pytest.fixture
def canary_release(trained_version):
    router.reset()
    recorder._pending.clear()
    release = release_start(candidate=model_train(actor="test"), steps=[20])
    router.refresh()
    yield release
    router.reset()
    recorder._pending.clear()


def test_traffic_buckets_are_stable_and_even():
    buckets = [traffic_bucket(viewer) for viewer in range(1, 20_001)]

    assert buckets == [traffic_bucket(viewer) for viewer in range(1, 20_001)]
    share_under_20 = sum(bucket < 20 for bucket in buckets) / len(buckets)
    assert 0.18 < share_under_20 < 0.22


def test_embedded_mode_sends_the_weight_of_viewers_to_the_canary(client, canary_release):
    pools = {viewer: client.get(f"/recommend/{viewer}")["X-Release-Pool"] for viewer in range(1, 1001)}

    canary_share = sum(pool == "canary" for pool in pools.values()) / len(pools)
    assert 0.15 < canary_share < 0.25
    # A viewer sees one version consistently.
    assert all(client.get(f"/recommend/{viewer}")["X-Release-Pool"] == pools[viewer] for viewer in range(1, 51))
    canary_viewer = next(viewer for viewer, pool in pools.items() if pool == "canary")
    assert client.get(f"/recommend/{canary_viewer}")["X-Model-Version"] == str(canary_release.candidate.version)


def test_aborting_returns_all_traffic_to_stable(client, canary_release):
    release_abort(release=canary_release, actor="test", reason="test")

    router.refresh()

    assert {client.get(f"/recommend/{viewer}")["X-Release-Pool"] for viewer in range(1, 201)} == {"stable"}
    assert router.stores["canary"].current is None


def test_nginx_mode_serves_only_this_process_pool(client, canary_release, settings):
    settings.RELEASE_MODE = "nginx"
    settings.SERVING_POOL = "canary"
    router.reset()

    response = client.get("/recommend/5")

    assert response["X-Release-Pool"] == "canary"
    assert response["X-Model-Version"] == str(canary_release.candidate.version)
    assert canary_release.candidate.status == ModelVersion.Status.CANARY
