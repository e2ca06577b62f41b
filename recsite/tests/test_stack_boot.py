"""The compose stack as it boots: every service healthy in the order it needs, the topology
production needs, and what an operator finds on it (issue 17's faults 1-5 and 9-14 at boot)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.stack_client import ROOT, Stack, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.integration, pytest.mark.slow]

LONG_RUNNING = [
    "mariadb",
    "mariadb-replica",
    "kafka",
    "web-stable-1",
    "web-stable-2",
    "web-canary",
    "ingest",
    "worker",
    "nginx",
    "prometheus",
    "cadvisor",
]


def test_every_service_has_a_health_check_and_is_healthy(stack: Stack):
    states = {service: stack.health(service) for service in LONG_RUNNING}

    assert states == dict.fromkeys(LONG_RUNNING, "healthy")


def test_the_apps_start_after_migrate_has_finished_and_never_crash_loop(stack: Stack):
    migrate = stack.container("migrate")["State"]
    restarts = {service: stack.container(service)["RestartCount"] for service in ("ingest", "worker", "web-stable-1")}

    assert (migrate["Status"], migrate["ExitCode"]) == ("exited", 0)
    assert restarts == {"ingest": 0, "worker": 0, "web-stable-1": 0}
    # Created before the consumer subscribed: no "topic not found" at a fresh start.
    assert "UNKNOWN_TOPIC_OR_PART" not in stack.logs("ingest")


def test_before_the_first_model_nginx_passes_on_the_pools_503(stack: Stack):
    if stack.first_answer is None:
        pytest.skip("the stack had a model before this session: its first answer was not seen")

    # The pools' own answer, not NGINX's 502 after marking both failed.
    assert (stack.first_answer.status, stack.first_answer.body) == (503, "no model is loaded yet")


def test_two_stable_servers_and_a_canary_answer_behind_nginx(stack: Stack):
    upstreams = stack.compose("exec", "-T", "nginx", "cat", "/etc/nginx/conf.d/00-upstreams.conf")
    answers = [stack.get(f"/recommend/{viewer}") for viewer in range(1, 61)]

    assert upstreams.count("server ") == 3
    assert {answer.status for answer in answers} == {200}
    assert {answer.headers["X-Release-Pool"] for answer in answers} == {"stable"}
    # Each stable server answered some of them (Prometheus scrapes each by name).
    served = wait_until(
        lambda: (
            {
                sample["metric"]["instance"]
                for sample in stack.prometheus(
                    'sum by (instance) (recsite_recommend_requests_total{pool="stable"}) > 0'
                )
            }
            >= {"web-stable-1:8082", "web-stable-2:8082"}
        ),
        seconds=30,
        what="both stable servers' answers in Prometheus",
    )
    assert served


def test_the_console_serves_its_css_and_charts(stack: Stack):
    css = stack.get("/static/admin/css/base.css", port=stack.console_port)
    chart = stack.get("/static/charts/vendor/chart.js/chart.umd.min.js", port=stack.console_port)
    login = stack.get("/admin/login/", port=stack.console_port)

    assert (css.status, chart.status, login.status) == (200, 200, 200)
    assert "text/css" in css.headers["Content-Type"]


def test_a_host_name_from_the_settings_file_is_served_and_others_refused(stack: Stack):
    named = stack.get("/recommend/1", headers={"Host": "recsite.test"})
    other = stack.get("/recommend/1", headers={"Host": "elsewhere.example"})

    assert (named.status, other.status) == (200, 400)


def test_settings_from_the_env_file_reach_every_recsite_container(stack: Stack):
    for service in ("worker", "web-canary", "ingest"):
        environment = dict(item.split("=", 1) for item in stack.container(service)["Config"]["Env"])
        assert environment["RELEASE_STEPS"] == stack.settings["RELEASE_STEPS"]


def test_a_model_trained_in_the_stack_records_the_code_it_was_built_from(stack: Stack):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    revisions = {row[0] for row in stack.sql("SELECT code_revision FROM recommender_modelversion")}

    assert revisions
    assert all(revision.removesuffix("+dirty") == head.strip() for revision in revisions)


def test_the_replica_follows_the_primary_and_the_apps_read_from_it(stack: Stack):
    replicated = "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM recommender_modelversion"
    primary = stack.sql(replicated)
    wait_until(lambda: stack.sql(replicated, replica=True) == primary or None, seconds=30, what="the replica")
    status = stack.shell("from core.replica import replica_status; print(replica_status().summary)")

    assert primary[0][0] > 0
    assert stack.sql("SELECT @@read_only, @@server_id", replica=True) == [(1, 2)]
    assert "reads from the replica" in status


def test_prometheus_scrapes_cadvisor_for_each_containers_cpu_and_memory(stack: Stack):
    def memory() -> set[str]:
        samples = stack.prometheus(f'container_memory_usage_bytes{{name=~"{stack.project}-.*"}}')
        return {sample["metric"]["name"] for sample in samples}

    names = wait_until(lambda: memory() or None, seconds=60, what="cAdvisor's container memory in Prometheus")
    cpu = stack.prometheus("container_cpu_usage_seconds_total")

    assert any("web-stable-1" in name for name in names)
    assert any("mariadb" in name for name in names)
    assert cpu


def test_data_lives_on_named_volumes(stack: Stack):
    def volume_at(service: str, path: str) -> str:
        mounts = stack.container(service)["Mounts"]
        return next(mount.get("Name", "") for mount in mounts if mount["Destination"] == path)

    project = stack.project
    kafka_files = stack.compose("exec", "-T", "kafka", "ls", "/var/lib/kafka/data")

    assert volume_at("kafka", "/var/lib/kafka/data") == f"{project}_kafka-data"
    assert volume_at("prometheus", "/prometheus") == f"{project}_prometheus-data"
    assert volume_at("mariadb", "/var/lib/mysql") == f"{project}_mariadb-data"
    # The topic and the group's offsets are on it, not in /tmp.
    assert "movielog-0" in kafka_files
    assert "__consumer_offsets-0" in kafka_files


def test_the_runtime_image_has_no_compilers_or_test_tools(stack: Stack):
    probe = "command -v gcc || command -v cc || command -v git || python -c 'import pytest' 2>/dev/null && echo found"
    result = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", "recsite:latest", "-c", probe],
        capture_output=True,
        text=True,
        check=False,
    )
    size = int(
        subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", "recsite:latest"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )

    assert result.stdout.strip() == ""
    assert size < 1_000_000_000


def test_the_stack_benchmark_runs_at_a_tiny_size(stack: Stack):
    # make bench-stack's script, at 20 requests/s for 10 s: a broken benchmark fails the build.
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "stack.py"), "--rate", "20", "--seconds", "10"],
        env={**stack.environment},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "provenance rows 200 for 200 answers: equal" in result.stdout
    assert "web-stable-1" in result.stdout
