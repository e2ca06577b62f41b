"""Reaching a running compose stack from this host, for the stack tests (``make test-stack``:
project ``recsite-test``, settings ``.services/stack-test.env``) and ``make bench-stack`` (the
developer's stack): only through the ports it publishes on 127.0.0.1, and driven with
``docker compose`` (stop, kill, start) through ``scripts/stack.sh``.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def _settings(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def wait_until(check: Callable[[], T | None], *, seconds: float, every: float = 1.0, what: str = "") -> T:
    """``check()``'s first truthy answer within ``seconds``; an AssertionError naming ``what`` if none."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while True:
        try:
            answer = check()
            if answer:
                return answer
        except Exception as error:  # noqa: BLE001 - a service that is still coming up
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or check} did not happen within {seconds:.0f} s (last error: {last})")
        time.sleep(every)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: dict[str, str]


class Stack:
    """A running stack: its ports, its database, its compose commands."""

    def __init__(self, *, project: str, env_file: Path, env_template: Path = ROOT / ".env.example") -> None:
        self.project = project
        self.env_file = env_file
        self.first_answer: Answer | None = None
        self.environment = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": project,
            "STACK_ENV_FILE": str(env_file),
            "STACK_ENV_TEMPLATE": str(env_template),
        }

    # --- starting and driving it ---------------------------------------------------------------
    def script(self, *args: str, timeout: float = 1800, extra: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [str(ROOT / "scripts" / "stack.sh"), *args],
            env={**self.environment, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"stack.sh {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
        return result.stdout

    def compose(self, *args: str, timeout: float = 600) -> str:
        return self.script("compose", *args, timeout=timeout)

    def manage(self, *args: str, timeout: float = 600) -> str:
        """A management command in the worker container (``docker compose exec``)."""
        return self.compose("exec", "-T", "worker", "python", "manage.py", *args, timeout=timeout)

    def shell(self, code: str, timeout: float = 600) -> str:
        return self.manage("shell", "-c", code, timeout=timeout)

    def container(self, service: str) -> dict[str, Any]:
        ids = self.compose("ps", "-aq", service).split()
        inspected: list[dict[str, Any]] = json.loads(
            subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout
        )
        return inspected[0]

    def health(self, service: str) -> str:
        state = self.container(service)["State"]
        return str(state.get("Health", {}).get("Status", "none"))

    def wait_healthy(self, *services: str, seconds: float = 180) -> None:
        for service in services:

            def healthy(service: str = service) -> bool:
                return self.health(service) == "healthy"

            wait_until(healthy, seconds=seconds, what=f"{service} healthy")

    def logs(self, service: str, *, since: str = "") -> str:
        return self.compose("logs", "--no-color", *(["--since", since] if since else []), service)

    # --- its published ports ----------------------------------------------------------------------
    @cached_property
    def settings(self) -> dict[str, str]:
        return _settings(self.env_file)

    def port(self, name: str, default: int) -> int:
        return int(self.settings.get(name, default))

    @property
    def public_port(self) -> int:
        return self.port("PUBLIC_PORT", 8082)

    @property
    def console_port(self) -> int:
        return self.port("CONSOLE_PORT", 8083)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.port('KAFKA_EXTERNAL_PORT', 29092)}"

    def get(self, path: str, *, port: int | None = None, headers: dict[str, str] | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", port or self.public_port, timeout=15)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.read().decode("utf-8", "replace"), dict(response.getheaders()))
        finally:
            connection.close()

    def prometheus(self, query: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port('PROMETHEUS_PORT', 9090)}/api/v1/query?" + urllib.parse.urlencode(
            {"query": query}
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
        results: list[dict[str, Any]] = answer["data"]["result"]
        return results

    def sql(self, query: str, parameters: Sequence[object] = (), *, replica: bool = False) -> list[tuple[Any, ...]]:
        """``query`` on the primary, or on its read replica."""
        import MySQLdb

        connection = MySQLdb.connect(
            host="127.0.0.1",
            port=self.port("MARIADB_REPLICA_PORT", 33307) if replica else self.port("MARIADB_PORT", 33306),
            user="recsite",
            password=self.settings.get("MARIADB_PASSWORD", "recsite"),
            database="recsite",
            connect_timeout=5,
        )
        try:
            cursor = connection.cursor()
            cursor.execute(query, parameters)
            rows: list[tuple[Any, ...]] = list(cursor.fetchall())
            connection.commit()
            return rows
        finally:
            connection.close()

    def scalar(self, query: str, parameters: Sequence[object] = ()) -> Any:
        return self.sql(query, parameters)[0][0]

    def rows_for(self, request_ids: Iterable[str]) -> int:
        """How many of these answers have their provenance row."""
        ids, found = list(request_ids), 0
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            marks = ",".join(["%s"] * len(chunk))
            found += self.scalar(f"SELECT COUNT(*) FROM provenance_recommendation WHERE request_id IN ({marks})", chunk)
        return found

    def stable_version(self) -> int | None:
        rows = self.sql("SELECT version FROM recommender_modelversion WHERE status = 'stable'")
        return int(rows[0][0]) if rows else None
