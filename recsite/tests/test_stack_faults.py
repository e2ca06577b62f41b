"""Faults on the running stack, each checked for what was lost or duplicated: a server killed
under load, Kafka restarted and the consumer killed mid-stream, the database stopped under load,
a corrupt artifact published, NGINX restarted with a pool down, a training cut off by a deploy,
and the whole stack taken down and up again."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from benchmarks.loadgen import load_run
from benchmarks.stack_client import Stack, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.integration, pytest.mark.slow]

# Ratings published by these tests are dated in a window of their own, each at a second of its
# own, by the bootstrap world's viewers (new viewers would fail the next snapshot's check).
TEST_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _upstream_servers(stack: Stack) -> int:
    return stack.compose("exec", "-T", "nginx", "cat", "/etc/nginx/conf.d/00-upstreams.conf").count("server ")


def _all_rows_written(stack: Stack, request_ids: list[str], *, seconds: float = 120) -> int:
    return wait_until(
        lambda: (found := stack.rows_for(request_ids)) == len(request_ids) and found,
        seconds=seconds,
        every=3,
        what=f"provenance rows for all {len(request_ids):,} answers",
    )


def _in_background(action: Callable[[], object]) -> Callable[[], None]:
    """An action for the load's timeline that does not hold the load up (compose stop waits)."""

    def start() -> None:
        threading.Thread(target=action, daemon=True).start()

    return start


def test_nginx_restarted_while_a_pool_is_down_serves_from_the_others(stack: Stack):
    stack.compose("stop", "web-canary")
    try:
        stack.compose("restart", "--no-deps", "nginx")
        stack.wait_healthy("nginx", seconds=60)
        answers = [stack.get(f"/recommend/{viewer}") for viewer in range(1, 41)]
        servers_while_down = _upstream_servers(stack)
    finally:
        stack.compose("start", "web-canary")
    stack.wait_healthy("web-canary")

    assert {answer.status for answer in answers} == {200}
    assert servers_while_down == 2
    # Back in NGINX's upstreams without anyone touching NGINX.
    assert wait_until(lambda: _upstream_servers(stack) == 3, seconds=30, what="the canary back in NGINX")


def test_with_every_stable_server_down_the_canary_pool_takes_the_traffic(stack: Stack):
    stack.compose("stop", "web-stable-1", "web-stable-2")
    try:
        wait_until(lambda: _upstream_servers(stack) == 1, seconds=30, what="NGINX left with the canary pool")
        answers = [stack.get(f"/recommend/{viewer}") for viewer in range(1, 21)]
    finally:
        stack.compose("start", "web-stable-1", "web-stable-2")
    stack.wait_healthy("web-stable-1", "web-stable-2")

    assert {answer.status for answer in answers} == {200}
    assert {answer.headers["X-Release-Pool"] for answer in answers} == {"canary"}
    assert wait_until(lambda: _upstream_servers(stack) == 3, seconds=30, what="the stable servers back in NGINX")


def test_nginx_logs_requests_after_a_reload_and_stops_at_once(stack: Stack):
    stack.compose("exec", "-T", "nginx", "nginx", "-s", "reload")
    time.sleep(1)
    stack.get("/recommend/424242")
    logged = wait_until(
        lambda: "GET /recommend/424242" in stack.logs("nginx"), seconds=15, what="the request in NGINX's log"
    )

    started = time.monotonic()
    stack.compose("stop", "nginx")
    stop_seconds = time.monotonic() - started
    exit_code = stack.container("nginx")["State"]["ExitCode"]
    stack.compose("start", "nginx")
    stack.wait_healthy("nginx", seconds=60)

    assert logged
    # Stopped by its own signal handling, not SIGKILLed at the end of the grace period (137).
    assert stop_seconds < 8
    assert exit_code != 137


def test_a_stable_server_killed_under_load_fails_no_request_and_loses_no_row(stack: Stack):
    result = load_run(
        port=stack.public_port,
        rate=80,
        seconds=30,
        viewers=range(1, 301),
        during=[
            (8, lambda: stack.compose("kill", "-s", "SIGKILL", "web-stable-1")),
            (18, lambda: stack.compose("start", "web-stable-1")),
        ],
    )
    stack.wait_healthy("web-stable-1")

    assert result.failed == 0, result.summary()
    # The killed server's unwritten rows were in its spool: its next start wrote them.
    assert _all_rows_written(stack, result.request_ids) == result.ok


def _rating_lines(movies: list[str], start: int, count: int) -> list[bytes]:
    """``count`` ratings at the seconds ``start``, ``start + 1``, ... after ``TEST_EPOCH``."""
    return [
        (
            f"{(TEST_EPOCH + timedelta(seconds=start + number)).strftime('%Y-%m-%dT%H:%M:%S')},{1 + number % 300},"
            f"GET /rate/{movies[number % len(movies)]}={1 + number % 5}\n"
        ).encode()
        for number in range(count)
    ]


@pytest.fixture
def movies(stack: Stack) -> list[str]:
    """Ten movies of the stack's catalogue, by the slug the platform's lines name them by."""
    return [row[0] for row in stack.sql("SELECT slug FROM catalog_movie ORDER BY id LIMIT 10")]


def _publish(stack: Stack, lines: list[bytes], *, during: Callable[[], object], at_share: float = 0.4) -> None:
    """Publish ``lines`` to the stack's Kafka through its external listener, as the platform
    does, running ``during`` when ``at_share`` of them are sent; every send must succeed."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", retries=1000, retry_backoff_ms=500, linger_ms=20
    )
    futures = []
    try:
        for number, line in enumerate(lines):
            if number == int(len(lines) * at_share):
                producer.flush(timeout=60)
                during()
            futures.append(producer.send("movielog", line))
            if number % 2000 == 1999:
                time.sleep(0.2)  # the platform's pace, so that the fault lands mid-stream
        producer.flush(timeout=180)
    finally:
        producer.close(timeout=30)
    assert all(future.succeeded() for future in futures)


def _ratings_at(stack: Stack, start: int, count: int) -> int:
    """Ratings stored at the seconds ``_rating_lines(movies, start, count)`` names."""
    begin = TEST_EPOCH + timedelta(seconds=start)
    end = begin + timedelta(seconds=count)
    return stack.scalar(
        "SELECT COUNT(*) FROM catalog_rating WHERE rated_at >= %s AND rated_at < %s",
        (begin.replace(tzinfo=None), end.replace(tzinfo=None)),
    )


def _wait_ingested(stack: Stack) -> None:
    stack.manage("stream_lag", "--wait", "300", timeout=360)


def test_kafka_restarted_during_ingestion_loses_and_duplicates_nothing(stack: Stack, movies):
    lines = _rating_lines(movies, 0, 20_000)

    _publish(stack, lines, during=lambda: stack.compose("restart", "--no-deps", "kafka"))
    _wait_ingested(stack)

    # Each line is one rating by a viewer of one movie at one moment: stored once, none missing.
    assert _ratings_at(stack, 0, len(lines)) == len(lines)


def test_the_consumer_killed_mid_batch_loses_and_duplicates_nothing(stack: Stack, movies):
    lines = _rating_lines(movies, 100_000, 20_000)

    def kill_and_restart() -> None:
        time.sleep(1.5)
        stack.compose("kill", "-s", "SIGKILL", "ingest")
        time.sleep(2)
        stack.compose("start", "ingest")

    _publish(stack, lines, during=_in_background(kill_and_restart), at_share=0.3)
    stack.wait_healthy("ingest")
    _wait_ingested(stack)

    assert _ratings_at(stack, 100_000, len(lines)) == len(lines)


def _ingest_targets_up(stack: Stack, count: int) -> list[str] | None:
    """The ingest replicas Prometheus scrapes, once it scrapes ``count`` of them."""
    up = [target["metric"]["instance"] for target in stack.prometheus('up{job="recsite-ingest"} == 1')]
    return up if len(up) == count else None


def test_ingest_scaled_to_two_replicas_shares_the_stream_and_leaves_each_others_runs_alone(stack: Stack, movies):
    before = stack.scalar("SELECT COALESCE(MAX(id), 0) FROM stream_ingestrun")
    stack.compose("up", "-d", "--no-deps", "--scale", "ingest=2", "ingest")
    try:
        lines = _rating_lines(movies, 200_000, 20_000)
        _publish(stack, lines, during=lambda: None)
        _wait_ingested(stack)
        runs = stack.sql(
            "SELECT holder, status, `lines` FROM stream_ingestrun WHERE id > %s OR status = 'running'", (before,)
        )
        targets = wait_until(lambda: _ingest_targets_up(stack, 2), seconds=60, what="Prometheus scraping both replicas")
    finally:
        stack.compose("up", "-d", "--no-deps", "--scale", "ingest=1", "ingest")

    assert _ratings_at(stack, 200_000, len(lines)) == len(lines)
    # Two consumers, each with a run of its own host, both running: neither took the other's for dead.
    assert len({holder.split(":")[0] for holder, status, _ in runs if status == "running"}) == 2
    assert [status for _, status, _ in runs if status != "running"] == []
    assert len(targets) == 2


def test_the_database_stopped_under_load_answers_go_on_and_every_row_arrives(stack: Stack):
    result = load_run(
        port=stack.public_port,
        rate=40,
        seconds=60,
        viewers=range(1, 301),
        during=[
            (10, _in_background(lambda: stack.compose("stop", "mariadb"))),
            (40, lambda: stack.compose("start", "mariadb")),
        ],
    )
    stack.wait_healthy("mariadb", "web-stable-1", "web-stable-2", "web-canary", "ingest", "worker", seconds=240)

    assert result.failed == 0, result.summary()
    assert _all_rows_written(stack, result.request_ids, seconds=180) == result.ok


# Every gunicorn worker of a server (the master's children) killed with SIGKILL: the master
# starts new ones, whose start-up recovery finds the database away.
_KILL_WORKERS = """
import os, signal

def parent_and_command(pid):
    with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return int(stat.read().rsplit(")", 1)[1].split()[1]), cmdline.read()

processes = {}
for name in filter(str.isdigit, os.listdir("/proc")):
    try:
        processes[int(name)] = parent_and_command(name)
    except OSError:
        pass
def gunicorn(command):  # python .../gunicorn ...: the master and its workers, not docker-init
    arguments = command.split(b"\\0")
    return len(arguments) > 1 and arguments[1].endswith(b"/gunicorn")

for pid, (parent, command) in processes.items():
    if gunicorn(command) and gunicorn(processes.get(parent, (0, b""))[1]):
        os.kill(pid, signal.SIGKILL)
"""


def _server_starts(stack: Stack, *services: str) -> dict[str, tuple[str, int]]:
    return {service: (stack.container(service)["State"]["StartedAt"], stack.container(service)["RestartCount"])
            for service in services}  # fmt: skip


def test_workers_killed_while_the_database_is_away_lose_no_row_once_it_returns_without_a_restart(stack: Stack):
    servers = ("web-stable-1", "web-stable-2")
    started = _server_starts(stack, *servers)

    def kill_workers() -> None:
        for server in servers:
            stack.compose("exec", "-T", server, "python", "-c", _KILL_WORKERS)
            killed.append(server)

    killed: list[str] = []

    result = load_run(
        port=stack.public_port,
        rate=60,
        seconds=50,
        viewers=range(1, 301),
        during=[
            (10, _in_background(lambda: stack.compose("stop", "mariadb"))),
            (20, kill_workers),
            (40, lambda: stack.compose("start", "mariadb")),
        ],
    )
    stack.wait_healthy("mariadb", seconds=120)
    # Within a minute of the database's return, with no server restarted: the new workers'
    # writers drain the killed ones' spools.
    written = _all_rows_written(stack, result.request_ids, seconds=60)
    stack.wait_healthy("web-stable-1", "web-stable-2", "web-canary", "ingest", "worker", seconds=240)

    assert killed == list(servers)
    assert written == result.ok
    assert result.ok > 0.95 * (result.ok + result.failed), result.summary()
    assert _server_starts(stack, *servers) == started


def test_an_ingest_run_stopped_while_the_database_is_away_is_saved_when_it_returns(stack: Stack):
    stack.compose("stop", "mariadb")
    stopping = threading.Thread(target=lambda: stack.compose("stop", "ingest"))
    stopping.start()
    time.sleep(8)
    stack.compose("start", "mariadb")
    stopping.join(timeout=90)
    stack.wait_healthy("mariadb")
    status = stack.sql("SELECT status, finished_at FROM stream_ingestrun ORDER BY id DESC LIMIT 1")[0]
    stack.compose("start", "ingest")
    stack.wait_healthy("ingest", "worker", "web-stable-1", "web-stable-2", "web-canary", seconds=240)

    assert status[0] == "stopped"
    assert status[1] is not None


def test_a_corrupt_artifact_is_refused_and_the_previous_version_keeps_serving(stack: Stack):
    stable = stack.stable_version()
    assert stable is not None
    # A candidate whose artifact is damaged after it was hashed, then released to the canary pool
    # (made a candidate whatever the gate said of it: the gate is not what this is about).
    stack.shell(
        "from django.conf import settings; settings.RELEASE_AUTO_START = False\n"
        "from recommender.models import ModelVersion\n"
        "from recommender.services import model_train\n"
        "from releases.services import release_start\n"
        "version = model_train(actor='stack test')\n"
        "ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.CANDIDATE)\n"
        "top = version.artifact_file / 'top.npy'\n"
        "data = bytearray(top.read_bytes()); data[-8:] = bytes(8); top.write_bytes(bytes(data))\n"
        "release_start(candidate=version, steps=[50], actor='stack test')\n"
    )
    candidate = stable + 1
    try:
        refused = wait_until(
            lambda: stack.prometheus('sum(recsite_model_load_failures_total{pool="canary"}) > 0'),
            seconds=60,
            what="the canary pool refusing the corrupt artifact",
        )
        answers = [stack.get(f"/recommend/{viewer}") for viewer in range(1, 61)]
    finally:
        stack.manage("release", "abort", "--reason", "stack test: corrupt artifact")

    assert refused
    assert {answer.status for answer in answers} == {200}
    assert {answer.headers["X-Model-Version"] for answer in answers} == {str(stable)}
    assert str(candidate) not in {answer.headers["X-Model-Version"] for answer in answers}


def test_a_training_cut_off_by_a_deploy_is_marked_failed_and_queued_again_at_once(stack: Stack):
    newest = stack.scalar("SELECT MAX(version) FROM recommender_modelversion")
    stack.shell("from django_q.tasks import async_task; async_task('recommender.tasks.model_retrain')")
    wait_until(
        lambda: stack.sql("SELECT 1 FROM recommender_modelversion WHERE status = 'training'"),
        seconds=60,
        every=0.2,
        what="the queued training to start",
    )
    # A deploy whose stop grace period ran out: the worker is killed mid-training.
    stack.compose("kill", "-s", "SIGKILL", "worker")
    stack.compose("start", "worker")
    try:
        interrupted = wait_until(
            lambda: stack.sql(
                "SELECT status, error FROM recommender_modelversion WHERE version = %s AND status = 'failed'",
                (newest + 1,),
            ),
            seconds=120,
            what="the interrupted version marked failed",
        )
        # Not an hour later (django-q2's retry): within a couple of minutes.
        retrained = wait_until(
            lambda: stack.sql(
                "SELECT version FROM recommender_modelversion "
                "WHERE version > %s AND status NOT IN ('training', 'failed')",
                (newest + 1,),
            ),
            seconds=180,
            what="a new training after the interrupted one",
        )
        # A candidate's canary starts from a task of its own a moment later: ended below.
        with contextlib.suppress(AssertionError):
            wait_until(
                lambda: stack.sql(
                    "SELECT 1 FROM recommender_modelversion WHERE version = %s AND status != 'candidate'",
                    (retrained[0][0],),
                ),
                seconds=30,
            )
    finally:
        stack.wait_healthy("worker", seconds=180)
        stack.manage("shell", "-c", _ABORT_ACTIVE)

    assert "TrainingInterrupted" in interrupted[0][1]
    assert retrained
    assert not stack.sql("SELECT holder FROM core_namedlock WHERE name = 'training' AND holder != ''")


_ABORT_ACTIVE = (
    "from releases.services import release_abort, release_active\n"
    "release = release_active()\n"
    "release and release_abort(release=release, actor='stack test', reason='the test is over')\n"
)


def _committed_offsets(stack: Stack) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, group_id="recsite-ingest")
    try:
        numbers = sorted(consumer.partitions_for_topic("movielog") or ())
        partitions = [TopicPartition("movielog", number) for number in numbers]
        return {partition.partition: consumer.committed(partition) or 0 for partition in partitions}
    finally:
        consumer.close()


def test_down_and_up_keeps_data_versions_releases_and_kafka_offsets(stack: Stack):
    tables = [
        "catalog_rating",
        "catalog_watch",
        "recommender_modelversion",
        "releases_release",
        "provenance_recommendation",
        "stream_rejectedline",
    ]
    _wait_ingested(stack)
    before = {table: stack.scalar(f"SELECT COUNT(*) FROM {table}") for table in tables}
    offsets = _committed_offsets(stack)
    stable = stack.stable_version()

    stack.script("down")
    stack.script("up", timeout=1200)

    after = {table: stack.scalar(f"SELECT COUNT(*) FROM {table}") for table in tables}
    answer = stack.get("/recommend/1")
    assert after == before
    assert _committed_offsets(stack) == offsets
    assert sum(offsets.values()) > 0
    assert (answer.status, answer.headers["X-Model-Version"]) == (200, str(stable))
