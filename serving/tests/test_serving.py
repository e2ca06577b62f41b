import re
import time

import pytest
from django.db import DatabaseError
from django.urls import reverse

from catalog.models import Movie, Viewer
from provenance.models import Recommendation
from provenance.recorder import recorder
from recommender.artifacts import artifact_load
from recommender.models import ModelVersion
from recommender.services import model_train, model_version_set_status
from serving import store as store_module
from serving.router import router
from stream.services import stream_ingest_batch

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


@pytest.fixture
def serving(trained_version):
    """A worker's view of the world: the store reloaded, the provenance queue empty."""
    router.reset()
    recorder.clear()
    yield trained_version
    router.reset()
    recorder.clear()


def _known_viewer(version) -> int:
    return int(router.route(None)[1].artifact["viewers"][0])


def _ids(response) -> list[str]:
    return response.content.decode().split(",")


def test_answers_one_plain_text_line_of_at_most_20_existing_distinct_movie_ids(client, serving):
    response = client.get(f"/recommend/{_known_viewer(serving)}")

    text = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "\n" not in text
    ids = text.split(",")
    assert 0 < len(ids) <= 20
    assert len(set(ids)) == len(ids)
    assert set(ids) <= set(Movie.objects.values_list("slug", flat=True))


def test_every_answer_carries_model_version_and_request_id_headers(client, serving):
    response = client.get(f"/recommend/{_known_viewer(serving)}")

    assert response["X-Model-Version"] == str(serving.version)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-Id"])


@pytest.mark.parametrize("query", [{"HTTP_ACCEPT": "application/json"}, {"QUERY_STRING": "format=json"}])
def test_answers_json_when_asked(client, serving, query):
    response = client.get(f"/recommend/{_known_viewer(serving)}", **query)

    body = response.json()
    assert body["model_version"] == serving.version
    assert body["pool"] == "stable"
    assert body["request_id"] == response["X-Request-Id"]
    assert 0 < len(body["items"]) <= 20


def test_known_viewers_never_get_what_they_rated_or_finished(client, serving):
    viewer = _known_viewer(serving)
    first = _ids(client.get(f"/recommend/{viewer}"))
    runtime = Movie.objects.get(slug=first[1]).runtime_minutes
    assert runtime is not None  # the simulator gives every movie a runtime
    stream_ingest_batch(
        lines=[
            f"2026-11-30T00:00:00,{viewer},GET /rate/{first[0]}=4",
            f"2026-11-30T00:00:00,{viewer},GET /data/m/{first[1]}/{runtime - 1}.mpg",
        ]
    )

    second = _ids(client.get(f"/recommend/{viewer}"))

    assert first[0] not in second
    assert first[1] not in second
    rated = set(Movie.objects.filter(ratings__viewer_id=viewer).values_list("slug", flat=True))
    assert not rated & set(second)


def test_a_new_viewer_gets_a_cold_start_list_not_an_error(client, serving):
    response = client.get("/recommend/2000000000", HTTP_ACCEPT="application/json")

    body = response.json()
    assert response.status_code == 200
    assert body["strategy"] == "cold-start"
    assert len(body["items"]) == 20


def test_cold_start_follows_known_demographics(client, serving):
    artifact = router.route(None)[1].artifact
    keys = [str(key) for key in artifact["cold_keys"] if str(key).startswith("gender:")]
    Viewer.objects.create(id=1999999998, gender="F", age=30)
    Viewer.objects.create(id=1999999999, gender="M", age=30)

    women = client.get("/recommend/1999999998", HTTP_ACCEPT="application/json").json()["items"]
    men = client.get("/recommend/1999999999", HTTP_ACCEPT="application/json").json()["items"]

    assert keys  # the model has group lists to choose from
    assert women != men


def test_a_new_viewer_with_history_is_scored_from_it(client, serving):
    slugs = list(Movie.objects.values_list("slug", flat=True)[:3])
    stream_ingest_batch(lines=[f"2026-11-30T00:00:00,1999999997,GET /rate/{slug}=5" for slug in slugs])

    body = client.get("/recommend/1999999997", HTTP_ACCEPT="application/json").json()

    assert body["strategy"] == "history"
    assert not set(slugs) & set(body["items"])


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [
        ("abc", "user id 'abc' is not a positive whole number"),
        ("-1", "user id '-1' is not a positive whole number"),
        ("1e9", "user id '1e9' is not a positive whole number"),
        ("0", "user id '0' is not a positive whole number"),
        ("9999999999", "user id 9999999999 is larger than 2147483647"),
        ("x" * 400, "user id is too long (400 characters); expected a positive whole number"),
    ],
)
def test_malformed_ids_get_a_400_with_a_one_line_reason(client, serving, user_id, reason):
    response = client.get(f"/recommend/{user_id}")

    assert response.status_code == 400
    assert response.content.decode() == reason
    assert response["X-Model-Version"] == str(serving.version)


def test_health_and_readiness(client, serving):
    assert client.get(reverse("healthz")).content == b"ok"
    ready = client.get(reverse("readyz"))
    assert ready.status_code == 200
    assert ready.content.decode() == f"ready: v{serving.version} (stable)"


def test_not_ready_and_503_without_any_model(client, db):
    router.reset()

    assert client.get(reverse("readyz")).status_code == 503
    response = client.get("/recommend/5")
    assert response.status_code == 503
    assert response.content == b"no model is loaded yet"


def test_a_new_stable_version_is_picked_up_without_a_restart(client, serving):
    viewer = _known_viewer(serving)
    assert client.get(f"/recommend/{viewer}")["X-Model-Version"] == "1"
    second = model_train(actor="test")
    model_version_set_status(version=second, status=ModelVersion.Status.STABLE, reason="test promotion")

    router.refresh()  # what each worker's watcher thread does every SERVING_REFRESH_SECONDS

    assert client.get(f"/recommend/{viewer}")["X-Model-Version"] == "2"


def test_a_corrupt_new_version_is_refused_and_the_old_one_keeps_serving(client, serving, caplog):
    viewer = _known_viewer(serving)
    router.route(None)
    second = model_train(actor="test")
    model_version_set_status(version=second, status=ModelVersion.Status.STABLE)
    (second.artifact_file / "top.npy").write_bytes(b"not a model")

    router.refresh()

    assert client.get(f"/recommend/{viewer}")["X-Model-Version"] == "1"
    assert f"cannot serve v2: model artifact {second.artifact_file} is corrupt" in caplog.text


def test_every_answered_request_has_exactly_one_provenance_row(client, serving):
    viewer = _known_viewer(serving)
    responses = [client.get(f"/recommend/{viewer}") for _ in range(5)] + [client.get("/recommend/bad")]

    recorder.flush()

    rows = Recommendation.objects.order_by("served_at")
    assert rows.count() == 5
    ok = [response for response in responses if response.status_code == 200]
    assert [row.request_id for row in rows] == [response["X-Request-Id"] for response in ok]
    row = rows.first()
    assert row.model_version_id == serving.pk
    assert row.items == ok[0].content.decode()
    assert (row.viewer_id, row.pool, row.status, row.strategy) == (viewer, "stable", 200, "personalized")
    assert row.latency_ms > 0


def test_answers_from_the_model_alone_when_the_database_is_away(client, serving, monkeypatch):
    viewer = _known_viewer(serving)

    def broken(viewer_id):
        raise DatabaseError("connection refused")

    monkeypatch.setattr("serving.services.viewer_state", broken)

    body = client.get(f"/recommend/{viewer}", HTTP_ACCEPT="application/json").json()

    assert len(body["items"]) == 20
    recorder.flush()
    row = Recommendation.objects.get()
    assert (row.strategy, row.degraded) == ("personalized", True)


def test_after_a_failed_read_the_database_is_left_alone_for_a_while(client, serving, monkeypatch, settings):
    from serving.services import breaker

    settings.SERVING_DATABASE_RETRY_SECONDS = 60
    viewer = _known_viewer(serving)
    calls = []

    def broken(viewer_id):
        calls.append(viewer_id)
        raise DatabaseError("connection timed out")

    monkeypatch.setattr("serving.services.viewer_state", broken)
    try:
        statuses = [client.get(f"/recommend/{viewer}").status_code for _ in range(5)]
    finally:
        breaker.reset()

    # One request waited for the database; the four after it were answered without asking.
    assert statuses == [200] * 5
    assert calls == [viewer]


def test_openapi_schema_describes_recommend(client, db):
    schema = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    operation = schema["paths"]["/recommend/{user_id}"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/plain", "application/json"}
    assert "400" in operation["responses"]


def test_a_failed_answer_is_a_500_that_is_counted_and_recorded(client, serving, monkeypatch):
    def broken(**kwargs):
        raise ValueError("index out of range")

    monkeypatch.setattr("serving.api.recommendation_answer", broken)

    response = client.get("/recommend/5")

    assert response.status_code == 500
    assert response.content.decode().startswith("internal error answering viewer 5 (request ")
    recorder.flush()
    assert Recommendation.objects.get().status == 500


def test_each_answer_gets_its_own_request_id_and_the_callers_is_kept_beside_it(client, serving):
    viewer = _known_viewer(serving)

    responses = [client.get(f"/recommend/{viewer}", HTTP_X_REQUEST_ID="caller-7") for _ in range(5)]
    recorder.flush()

    ids = [response["X-Request-Id"] for response in responses]
    assert len(set(ids)) == 5
    assert "caller-7" not in ids
    rows = Recommendation.objects.all()
    assert sorted(row.request_id for row in rows) == sorted(ids)
    assert {row.caller_request_id for row in rows} == {"caller-7"}


def test_a_head_request_is_answered_but_not_recorded_as_served(client, serving):
    response = client.head(f"/recommend/{_known_viewer(serving)}")
    recorder.flush()

    assert response.status_code == 200
    assert response["X-Model-Version"] == str(serving.version)
    assert not Recommendation.objects.exists()


def test_readiness_does_not_tell_strangers_what_the_database_said(client, serving, monkeypatch):
    class RefusingDatabase:
        def cursor(self):
            raise DatabaseError("(1045, \"Access denied for user 'recsite'@'10.0.0.5'\")")

    monkeypatch.setattr("serving.api.connection", RefusingDatabase())

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.content.decode() == "not ready: database unavailable"


@pytest.mark.parametrize("version", ["%00", "a%0Db", "x" * 40])
def test_a_malformed_schema_version_is_a_400_not_a_broken_header(client, db, version):
    response = client.get(f"/api/schema?version={version}")

    assert response.status_code == 400
    assert response.content.decode().startswith("version must be")


def test_the_schema_headers_stay_printable(client, db):
    response = client.get("/api/schema?version=1")

    assert response.status_code == 200
    assert all(value.isprintable() for _, value in response.items())


def test_a_corrupt_stable_artifact_is_not_reread_on_every_request(client, serving, monkeypatch):
    (serving.artifact_file / "manifest.json").write_bytes(b"not an artifact")
    router.reset()
    reads = []
    real_load = artifact_load

    def counting_load(*args, **kwargs):
        reads.append(1)
        return real_load(*args, **kwargs)

    monkeypatch.setattr("serving.store.artifact_load", counting_load)

    statuses = [client.get("/recommend/5").status_code for _ in range(20)]

    assert set(statuses) == {503}
    assert len(reads) == 1  # the first request tried; the rest wait for the back-off to end
    time.sleep(store_module.ModelStore.FIRST_BACKOFF_SECONDS + 0.1)
    client.get("/recommend/5")
    assert len(reads) == 2  # tried again once the back-off ended


def _damage_in_place(version) -> None:
    """Change the top lists without changing the file's size (a bad disk, a botched copy)."""
    top = version.artifact_file / "top.npy"
    data = bytearray(top.read_bytes())
    data[-8:] = bytes(8) if data[-8:] != bytes(8) else b"\xff" * 8
    top.write_bytes(bytes(data))


def _two_versions(first):
    """v1 retired, v2 stable and served by this worker."""
    router.route(None)
    second = model_train(actor="test")
    model_version_set_status(version=second, status=ModelVersion.Status.STABLE)
    router.refresh()
    assert router.route(None)[1].version == 2
    return second


def test_a_worker_started_while_the_registry_is_away_serves_the_last_version_this_host_served(
    client, serving, monkeypatch
):
    viewer = _known_viewer(serving)  # this worker served v1: the host remembers it
    router.reset()  # a new worker

    def registry_away(self):
        raise DatabaseError("server has gone away")

    monkeypatch.setattr(store_module.ModelStore, "wanted", registry_away)
    monkeypatch.setattr("serving.services.viewer_state", lambda viewer_id: registry_away(None))
    response = client.get(f"/recommend/{viewer}")

    assert response.status_code == 200
    assert response["X-Model-Version"] == "1"


def test_an_artifact_damaged_in_place_is_found_and_an_older_good_version_stands_in(client, serving, settings):
    from serving.models import ArtifactFault

    settings.SERVING_VERIFY_SECONDS = 0.01
    second = _two_versions(serving)
    viewer = _known_viewer(second)
    _damage_in_place(second)
    time.sleep(0.02)

    router.refresh()  # the watcher thread's round
    response = client.get(f"/recommend/{viewer}")
    recorder.flush()

    assert response.status_code == 200
    assert response["X-Model-Version"] == "1"
    row = Recommendation.objects.get(request_id=response["X-Request-Id"])
    assert row.degraded
    fault = ArtifactFault.objects.get()
    assert (fault.model_version.version, fault.stand_in.version) == (2, 1)
    assert "top.npy does not match its sha256" in fault.detail


def test_after_a_restart_a_damaged_stable_artifact_is_replaced_by_an_older_good_one(client, serving):
    from serving.models import ArtifactFault

    second = _two_versions(serving)
    _damage_in_place(second)
    router.reset()  # the worker restarts: v2 fails its hash at load

    response = client.get("/recommend/5")

    assert response.status_code == 200
    assert response["X-Model-Version"] == "1"
    assert ArtifactFault.objects.get().stand_in.version == 1


def test_the_schema_declares_the_ids_and_formats_the_service_accepts(client, serving):
    from catalog.identifiers import MAX_VIEWER_ID

    schema = client.get("/api/schema?format=json").json()
    operation = schema["paths"]["/recommend/{user_id}"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}

    assert parameters["user_id"]["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_VIEWER_ID}
    assert sorted(parameters["format"]["schema"]["enum"]) == ["json", "txt"]
    assert "404" in operation["responses"]
    # The bounds are the service's: the largest declared id is answered, one more is refused.
    assert client.get(f"/recommend/{MAX_VIEWER_ID}").status_code == 200
    assert client.get(f"/recommend/{MAX_VIEWER_ID + 1}").status_code == 400
    assert client.get("/recommend/5?format=AAA").status_code == 404


def test_a_damaged_canary_is_stood_in_for_by_stable_not_by_an_earlier_canary(serving, settings):
    settings.RELEASE_MODE = "nginx"
    settings.SERVING_VERIFY_SECONDS = 0.01
    canary_pool = store_module.ModelStore("canary")
    aborted = model_train(actor="test")
    ModelVersion.objects.filter(pk=aborted.pk).update(status=ModelVersion.Status.CANARY)
    assert canary_pool.refresh().version == aborted.version  # the canary pool remembers it
    ModelVersion.objects.filter(pk=aborted.pk).update(status=ModelVersion.Status.REJECTED)
    third = model_train(actor="test")
    ModelVersion.objects.filter(pk=third.pk).update(status=ModelVersion.Status.CANARY)
    assert canary_pool.refresh().version == third.version
    _damage_in_place(third)
    time.sleep(0.02)

    stand_in = canary_pool.refresh()

    assert (stand_in.version, stand_in.stands_in_for) == (serving.version, third.version)
