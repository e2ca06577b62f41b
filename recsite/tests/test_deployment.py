"""The production stack's configuration agrees with itself, read as files (the stack's own tests,
marked ``stack``, run it)."""

import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_host_prometheus_scrapes_is_an_allowed_host():
    scrape = yaml.safe_load((ROOT / "infra" / "prometheus" / "prometheus.yml").read_text())
    web = next(job for job in scrape["scrape_configs"] if job["job_name"] == "recsite-web")
    hosts = {target.split(":")[0] for config in web["static_configs"] for target in config["targets"]}
    allowed = _compose()["x-recsite"]["environment"]["ALLOWED_HOSTS"]

    # The settings file's names (interpolated) and the pools' own, always appended.
    assert hosts <= set(re.sub(r"\$\{ALLOWED_HOSTS:-([^}]*)\}", r"\1", allowed).split(","))


def test_the_stack_creates_its_schedules_when_it_starts():
    command = " ".join(_compose()["services"]["migrate"]["command"])

    assert "manage.py migrate" in command
    assert "manage.py setup_schedules" in command


def test_only_the_public_port_and_kafkas_listener_may_be_published_beyond_this_host():
    published = sorted(
        (name, port) for name, service in _compose()["services"].items() for port in service.get("ports", [])
    )

    # Prometheus, MariaDB (and its replica) and the console stay on this host; the public port and Kafka's external
    # listener bind where PUBLIC_BIND and KAFKA_EXTERNAL_BIND say.
    assert [(name, port) for name, port in published if not port.startswith("127.0.0.1:")] == [
        ("kafka", "${KAFKA_EXTERNAL_BIND:-127.0.0.1}:${KAFKA_EXTERNAL_PORT:-29092}:29092"),
        ("nginx", "${PUBLIC_BIND:-0.0.0.0}:${PUBLIC_PORT:-8082}:8082"),
    ]
    assert {name for name, _ in published} == {"kafka", "mariadb", "mariadb-replica", "nginx", "prometheus"}


def test_the_pools_sync_workers_are_reachable_only_through_nginx_in_every_topology(monkeypatch, tmp_path):
    # Four slow clients hold gunicorn's sync workers (a probe answered 1 in 14 when a pool was
    # reached directly); NGINX buffers whole requests before it passes them on. So a pool is
    # never a listener of its own: on the compose network only (no published port, above), and
    # on the loopback address when gunicorn runs on a host (scripts, the demo).
    monkeypatch.delenv("WEB_HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "unused"))  # see the test below
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    web = {name: service for name, service in _compose()["services"].items() if name.startswith("web-")}

    assert config["bind"] == "127.0.0.1:8082"
    assert config["worker_class"] == "sync"
    assert sorted(web) == ["web-canary", "web-stable-1", "web-stable-2"]
    assert all("ports" not in service for service in web.values())


def test_each_pool_has_its_own_metrics_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    # Set, so that gunicorn.conf.py's setdefault leaves it alone and the teardown removes it: the
    # process's other tests must not inherit a metrics directory that does not exist.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "unused"))
    directories = set()
    for pool in ("stable", "canary"):
        monkeypatch.setenv("SERVING_POOL", pool)
        config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
        directories.add(str(config["_metrics_dir"]))

    # Same address, same VAR_DIR (as in compose), yet two directories: neither wipes the other.
    assert len(directories) == 2


PRODUCTION = {
    "SECRET_KEY": "a-long-random-key-for-the-check-only-" + "x" * 40,
    "REQUIRE_SECRET_KEY": "1",
    "ALLOWED_HOSTS": "recsite.example.org",
    "BEHIND_TLS_PROXY": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "DATABASE_URL": "mysql://recsite:secret@mariadb:3306/recsite",
}


def test_check_deploy_passes_with_the_production_environment(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), **PRODUCTION},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_methods_recsite_does_not_use_are_refused_before_they_reach_the_metrics(client, db):
    response = client.generic("BREW", "/recommend/5")

    metrics = client.get("/metrics").content.decode()
    assert response.status_code == 405
    assert "BREW" not in metrics  # each new method name used to add 19 series


def test_a_web_worker_computes_with_one_blas_thread(tmp_path):
    # As a worker does: gunicorn.conf.py is read, then the application imports numpy.
    script = (
        f"import runpy; runpy.run_path({str(ROOT / 'gunicorn.conf.py')!r}); import numpy; "
        "from threadpoolctl import threadpool_info; "
        "print(sorted({pool['num_threads'] for pool in threadpool_info() if pool['user_api'] == 'blas'}))"
    )
    environment = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "HOME": str(tmp_path)}

    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[1]"
