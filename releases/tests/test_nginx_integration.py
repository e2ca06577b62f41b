"""Canary releases through real NGINX, real Prometheus and two real gunicorn pools.

The harness runs recsite as production does, in its own database: a simulated world is
ingested and two versions trained; gunicorn serves the stable pool and the canary pool
(RELEASE_MODE=nginx); NGINX (Debian) splits traffic with the upstreams render_nginx writes;
Prometheus (Debian) scrapes both pools and the analysis reads it through its HTTP API.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

# The stack keeps its own SQLite database, whatever the suite runs on: run once, in the SQLite pass.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.own_database]

ROOT = Path(settings.BASE_DIR)
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{url} did not come up in {seconds}s")


class Stack:
    """recsite, two pools, NGINX and Prometheus on loopback, in a scratch directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = {name: _free_port() for name in ("nginx", "console", "stable", "canary", "prometheus")}
        self.nginx_prefix = directory / "nginx"
        self.nginx_prefix.mkdir()
        (self.nginx_prefix / "logs").mkdir()
        self.nginx_conf = self.nginx_prefix / "nginx.conf"
        self.pools: dict[str, subprocess.Popen[bytes]] = {}
        self.prometheus: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "VAR_DIR": str(directory),
            "DATABASE_URL": f"sqlite:///{directory / 'recsite.sqlite3'}",
            "LOG_LEVEL": "warning",
            "NOTIFY_EMAILS": "",
            "RELEASE_MODE": "nginx",
            "RELEASE_AUTO_START": "0",
            "SERVING_REFRESH_SECONDS": "0.5",
            "SNAPSHOT_MIN_RATINGS": "50",
            "NGINX_UPSTREAMS_PATH": str(self.nginx_prefix / "upstreams.conf"),
            "NGINX_RELOAD_COMMAND": f"nginx -p {self.nginx_prefix} -c {self.nginx_conf} -s reload",
            "NGINX_STABLE_SERVERS": f"127.0.0.1:{self.ports['stable']}",
            "NGINX_CANARY_SERVERS": f"127.0.0.1:{self.ports['canary']}",
            "PROMETHEUS_URL": f"http://127.0.0.1:{self.ports['prometheus']}",
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(self, *args: str, **extra: str) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}"
        return result.stdout

    def python(self, code: str) -> str:
        return self.manage("shell", "-c", code).strip()

    def build(self) -> None:
        self.manage("migrate", "--no-input", "-v", "0")
        world = self.directory / "world"
        stream = self.directory / "stream.log"
        self.manage("simulate", "--seed", "5", "--viewers", "150", "--movies", "80", "--sessions-per-viewer", "12",
                    "--out", str(stream), "--world-out", str(world))  # fmt: skip
        self.manage("import_movielens", str(world))
        self.manage("consume_stream", "--source", f"file:{stream}")
        self.manage("train")  # v1: stable
        self.manage("render_nginx", NGINX_RELOAD_COMMAND="true")  # NGINX is not running yet
        server = (ROOT / "nginx" / "recsite.conf").read_text()
        server = server.replace("listen 8082;", f"listen 127.0.0.1:{self.ports['nginx']};")
        server = server.replace("listen 8083;", f"listen 127.0.0.1:{self.ports['console']};")
        prefix = self.nginx_prefix
        self.nginx_conf.write_text(
            "worker_processes 1;\nerror_log logs/error.log warn;\npid logs/nginx.pid;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
            f"  include {prefix}/upstreams.conf;\n{server}\n}}\n"
        )
        subprocess.run(["nginx", "-p", str(self.nginx_prefix), "-c", str(self.nginx_conf)], check=True)
        (self.directory / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
            f"  - job_name: recsite\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{self.ports['stable']}', '127.0.0.1:{self.ports['canary']}']\n"
        )
        self.prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.start_pool("stable")
        self.start_pool("canary")
        _wait(f"http://127.0.0.1:{self.ports['prometheus']}/-/ready")

    def start_pool(self, pool: str, **extra: str) -> None:
        env = {**self.env, "SERVING_POOL": pool, "PORT": str(self.ports[pool]), "WEB_CONCURRENCY": "2", **extra}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.directory / f"metrics-{pool}")
        self.pools[pool] = subprocess.Popen(
            [GUNICORN, "recsite.wsgi"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        _wait(f"http://127.0.0.1:{self.ports[pool]}/readyz")

    def kill_pool(self, pool: str) -> None:
        process = self.pools.pop(pool)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_pool(self, pool: str) -> None:
        process = self.pools.pop(pool)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['nginx']}{path}", timeout=15) as response:
                return response.status, response.headers.get("X-Release-Pool", "")
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:
            return 0, ""

    def load(self, *, seconds: float, rate: float = 60) -> Counter[str | int]:
        """Requests through NGINX at ``rate`` per second; counts statuses and pools."""
        counts: Counter[str | int] = Counter()
        lock = threading.Lock()
        stop_at = time.monotonic() + seconds

        def client(offset: int) -> None:
            viewer = offset
            while time.monotonic() < stop_at:
                status, pool = self.get(f"/recommend/{viewer % 150 + 1}")
                with lock:
                    counts[status] += 1
                    counts[pool] += 1
                viewer += 4
                time.sleep(4 / rate)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return counts

    def abort_running(self) -> None:
        if self.release_state()[0] in ("pending", "canary", "paused"):
            self.manage("release", "abort", "--reason", "test cleanup")

    def newest_candidate(self) -> None:
        self.manage("train")  # same data, a new candidate version

    def close(self) -> None:
        for pool in list(self.pools):
            self.kill_pool(pool)
        subprocess.run(["nginx", "-p", str(self.nginx_prefix), "-c", str(self.nginx_conf), "-s", "stop"], check=False)
        if self.prometheus:
            self.prometheus.terminate()
            self.prometheus.wait(timeout=30)

    def release_state(self) -> tuple[str, int]:
        database = sqlite3.connect(self.directory / "recsite.sqlite3")
        try:
            return database.execute("SELECT state, weight FROM releases_release ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            database.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    built = Stack(tmp_path_factory.mktemp("nginx-stack"))
    try:
        built.build()
        yield built
    finally:
        built.close()


def test_nginx_splits_traffic_at_the_release_weight(stack):
    stack.newest_candidate()
    stack.manage("release", "start", "--steps", "20")

    pools = Counter(stack.get(f"/recommend/{viewer % 150 + 1}")[1] for viewer in range(2000))

    assert abs(pools["canary"] / 2000 - 0.20) <= 0.03
    assert pools["canary"] + pools["stable"] == 2000
    stack.manage("release", "abort", "--reason", "split measured")


def test_a_healthy_canary_is_promoted_through_its_steps(stack):
    stack.newest_candidate()
    stack.manage("release", "start", "--steps", "10,50", "--interval", "8", "--min-step", "0")
    for expected_weight in (50, 100):
        stack.load(seconds=9, rate=120)
        outcome = stack.python("from releases.tasks import release_evaluate_active; print(release_evaluate_active())")
        assert stack.release_state()[1] == expected_weight, outcome

    assert stack.release_state() == ("promoted", 100)
    # Every request now goes to the stable pool, which serves the promoted version.
    assert {stack.get("/recommend/7")[1] for _ in range(50)} == {"stable"}


def test_a_slow_canary_is_aborted_and_traffic_returns_to_stable(stack):
    stack.stop_pool("canary")
    stack.start_pool("canary", SERVING_FAULT_DELAY_MS="700")
    try:
        stack.newest_candidate()
        stack.manage(
            "release", "start", "--steps", "50", "--interval", "8", "--min-step", "0",
            "--threshold", "min_requests=5", "--threshold", "failure_limit=2",
        )  # fmt: skip
        stack.load(seconds=9)

        verdict = stack.python("from releases.tasks import release_evaluate_active; print(release_evaluate_active())")

        assert verdict.endswith("fail -> wait") or verdict.endswith("fail -> abort")
        for _ in range(2):  # the failure limit is two failed checks
            if stack.release_state()[0] == "aborted":
                break
            stack.load(seconds=3)
            stack.python("from releases.tasks import release_evaluate_active; print(release_evaluate_active())")
        assert stack.release_state() == ("aborted", 0)
        assert {stack.get("/recommend/9")[1] for _ in range(50)} == {"stable"}
    finally:
        stack.abort_running()
        stack.stop_pool("canary")
        stack.start_pool("canary")


def test_killing_and_restarting_the_canary_pool_under_load_fails_no_request(stack):
    stack.newest_candidate()
    stack.manage("release", "start", "--steps", "50")
    results: Counter[str | int] = Counter()

    def under_load() -> None:
        results.update(stack.load(seconds=12, rate=80))

    load = threading.Thread(target=under_load)
    load.start()
    time.sleep(3)
    stack.kill_pool("canary")
    time.sleep(3)
    stack.start_pool("canary")
    load.join()

    assert results[200] > 500
    assert set(results) <= {200, "stable", "canary"}, results
    stack.manage("release", "abort", "--reason", "test over")


def test_the_public_server_answers_recommendations_only_and_the_console_has_its_own(stack):
    public, console = stack.ports["nginx"], stack.ports["console"]

    def status(port: int, path: str, method: str = "GET") -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    assert status(public, "/recommend/5") == 200
    assert status(public, "/recommend/5", "HEAD") == 200
    assert status(public, "/healthz") == 200
    for path in ("/admin/", "/metrics", "/api/schema", "/readyz", "/static/admin/css/base.css"):
        assert status(public, path) == 404, path
    assert status(public, "/recommend/5", "POST") == 403
    assert status(public, "/recommend/5", "DELETE") == 403
    assert status(console, "/admin/login/") == 200
    assert status(console, "/readyz") == 200
    assert status(console, "/metrics") == 404  # Prometheus scrapes the pools directly


def test_nginx_turns_away_a_flood_of_console_logins_but_not_the_login_form(stack):
    url = f"http://127.0.0.1:{stack.ports['console']}/admin/login/"

    def status(method: str) -> int:
        body = b"username=ops&password=guess" if method == "POST" else None
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, method=method), timeout=15) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    posted = [status("POST") for _ in range(16)]

    # The burst (10) and the first reach Django (403 without a CSRF token); then NGINX says 429.
    assert 429 not in posted[:11]
    assert posted[11:] == [429] * 5
    assert [status("GET") for _ in range(3)] == [200] * 3


def test_schemathesis_finds_no_500_on_a_live_gunicorn_pool(stack):
    """Requests generated from /api/schema, sent to a real gunicorn pool: never a 500. Against
    gunicorn rather than Django's test server, which lets through headers gunicorn refuses (a
    NUL in ?version= was a 500 only here)."""
    base = f"http://127.0.0.1:{stack.ports['stable']}"
    with urllib.request.urlopen(f"{base}/api/schema?format=json", timeout=15) as response:
        api = schemathesis.openapi.from_dict(json.load(response))
    operations = [result.ok() for result in api.get_all_operations()]
    failures: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case) -> None:
            response = case.call(base_url=base, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query}: {response.status_code}")

        call()

    assert {operation.path for operation in operations} == {"/recommend/{user_id}", "/api/schema"}
    assert failures == []


def test_every_answer_has_its_row_after_the_workers_are_killed_under_load(stack):
    """The report: 150 answers, then kill -9 of the workers, left 0 rows. The writer is kept
    from writing (a 10-minute interval), so every row must come from the dead workers' spools."""
    stack.stop_pool("stable")
    stack.start_pool("stable", PROVENANCE_FLUSH_SECONDS="600")
    master = stack.pools["stable"].pid
    base = f"http://127.0.0.1:{stack.ports['stable']}"
    answered: list[str] = []
    lost: list[str] = []
    stop = threading.Event()

    def load(offset: int) -> None:
        number = offset
        while not stop.is_set():
            tag = f"kill-{number}"
            request = urllib.request.Request(f"{base}/recommend/{number % 150 + 1}", headers={"X-Request-Id": tag})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 200:
                        answered.append(tag)
            except OSError:
                lost.append(tag)  # in flight when its worker died: never answered, so no row is owed
            number += 4

    loaders = [threading.Thread(target=load, args=(offset,)) for offset in range(4)]
    for loader in loaders:
        loader.start()
    while len(answered) < 150:
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    for pid in workers:
        os.kill(int(pid), signal.SIGKILL)  # under load: answers keep coming from the new workers
    time.sleep(3)
    stop.set()
    for loader in loaders:
        loader.join(timeout=30)
    stack.stop_pool("stable")  # the new workers flush on a normal exit
    stack.start_pool("stable")

    database = sqlite3.connect(stack.directory / "recsite.sqlite3")
    rows = {row for (row,) in database.execute(
        "SELECT caller_request_id FROM provenance_recommendation WHERE caller_request_id LIKE 'kill-%'"
    )}  # fmt: skip
    assert len(workers) == 2
    assert len(answered) > 150
    # Write-ahead: a worker killed between recording an answer and sending it leaves a row
    # for an answer nobody received. Such a row may exist only for a request that was lost.
    assert set(answered) <= rows
    assert rows - set(answered) <= set(lost)
