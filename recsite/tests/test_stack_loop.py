"""The whole loop on the stack, end to end, with time compressed by its settings
(infra/stack-test.env): the simulator publishes into Kafka, the consumer stores the events in
MariaDB, the schedule trains a version that passes the gate, a canary takes traffic through
NGINX, the analysis reads Prometheus and promotes it, the new version answers with provenance
rows pointing to it, and its fairness report is there. Each step's time is printed."""

from __future__ import annotations

import threading
import time

import pytest

from benchmarks.loadgen import LoadResult, load_run
from benchmarks.stack_client import Answer, Stack, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.integration, pytest.mark.slow]


class Steps:
    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.times: list[tuple[str, float]] = []

    def done(self, step: str) -> None:
        now = time.monotonic()
        self.times.append((step, now - self.last))
        self.last = now
        print(f"[loop] {step}: {self.times[-1][1]:.1f} s ({now - self.started:.1f} s in all)")


def _what_the_worker_did(stack: Stack, *, since: int) -> str:
    """The registry, releases, failed tasks and the worker's last lines: why no canary came."""
    versions = stack.sql(
        "SELECT version, status, error, gate FROM recommender_modelversion WHERE version >= %s ORDER BY version",
        (since,),
    )
    releases = stack.sql("SELECT id, state, candidate_id FROM releases_release ORDER BY id DESC LIMIT 5")
    failures = stack.sql("SELECT name, func, result FROM django_q_task WHERE success = 0 ORDER BY stopped DESC LIMIT 5")
    schedules = stack.sql("SELECT name, next_run, repeats FROM django_q_schedule")
    return "\n".join(
        [
            f"versions: {versions}",
            f"releases: {releases}",
            f"failed tasks: {failures}",
            f"schedules: {schedules}",
            "worker:",
            stack.logs("worker")[-6000:],
        ]
    )


def test_events_to_a_promoted_model_whose_answers_carry_their_provenance(stack: Stack):
    steps = Steps()
    stable = stack.stable_version()
    ratings_before = stack.scalar("SELECT COUNT(*) FROM catalog_rating")

    # 1. The simulated platform publishes another day of events into Kafka (the compose profile).
    stack.compose(
        "run", "--rm", "simulator", "python", "manage.py", "simulate", "--seed", "42", "--viewers", "300",
        "--movies", "200", "--sessions-per-viewer", "6", "--days", "2", "--out", "kafka://kafka:9092/movielog",
    )  # fmt: skip
    steps.done("simulator → Kafka")

    # 2. The consumer stores them.
    stack.manage("stream_lag", "--wait", "300", timeout=360)
    assert stack.scalar("SELECT COUNT(*) FROM catalog_rating") > ratings_before
    steps.done("Kafka → ingest → MariaDB")

    # 3. The retraining schedule comes due; the worker trains, the gate passes the version, and
    #    a canary release starts by itself.
    stack.shell(
        "from django.utils import timezone; from django_q.models import Schedule\n"
        "Schedule.objects.filter(name='retrain models').update(next_run=timezone.now())"
    )
    try:
        candidate = wait_until(
            lambda: stack.sql(
                "SELECT version, status FROM recommender_modelversion WHERE version > %s AND status = 'canary'",
                (stable,),
            ),
            seconds=240,
            every=2,
            what="a new version trained by the schedule and released to the canary",
        )[0][0]
    except AssertionError as error:
        raise AssertionError(f"{error}\n{_what_the_worker_did(stack, since=stable or 0)}") from None
    steps.done(f"scheduled training → gate → canary (v{candidate})")

    # 4. Traffic through NGINX while the analysis judges the canary from Prometheus, step by step.
    stop = threading.Event()
    loads: list[LoadResult] = []
    load = threading.Thread(
        target=lambda: loads.append(
            load_run(port=stack.public_port, rate=30, seconds=480, viewers=range(1, 301), stop=stop)
        )
    )
    load.start()
    try:
        state = wait_until(
            lambda: (
                (rows := stack.sql("SELECT state FROM releases_release ORDER BY id DESC LIMIT 1"))
                and rows[0][0] in ("promoted", "aborted")
                and rows[0][0]
            ),
            seconds=480,
            every=5,
            what="the release decided by its analysis",
        )
    finally:
        stop.set()
        load.join()
    steps.done(f"canary through NGINX → analysis from Prometheus → {state}")
    checks = stack.sql(
        "SELECT run.source, run.verdict FROM releases_analysisrun run "
        "JOIN releases_release rel ON run.release_id = rel.id "
        "WHERE rel.candidate_id = (SELECT id FROM recommender_modelversion WHERE version = %s)",
        (candidate,),
    )
    assert state == "promoted", checks
    assert {source for source, _ in checks} == {"prometheus"}
    # NGINX gave the canary pool its share: it answered through the public port.
    assert loads[0].pools["canary"] > 0
    assert str(candidate) in loads[0].versions
    assert loads[0].failed == 0, loads[0].summary()

    # 5. The new version answers, and each answer's provenance row points to it.
    def from_candidate() -> list[Answer] | None:
        got = [stack.get(f"/recommend/{viewer}") for viewer in range(1, 31)]
        return got if {answer.headers["X-Model-Version"] for answer in got} == {str(candidate)} else None

    answers = wait_until(from_candidate, seconds=30, what="answers from the promoted version")
    ids = [answer.headers["X-Request-Id"] for answer in answers]
    wait_until(lambda: stack.rows_for(ids) == len(ids), seconds=30, what="the answers' provenance rows")
    marks = ",".join(["%s"] * len(ids))
    versions = stack.sql(
        "SELECT DISTINCT version.version FROM provenance_recommendation row "
        "JOIN recommender_modelversion version ON row.model_version_id = version.id "
        f"WHERE row.request_id IN ({marks})",
        ids,
    )
    assert versions == [(candidate,)]
    steps.done("answers from the new version with their provenance rows")

    # 6. Its fairness report, made by the worker after the training.
    report = wait_until(
        lambda: stack.sql(
            "SELECT report.id FROM fairness_fairnessreport report JOIN recommender_modelversion version "
            "ON report.model_version_id = version.id WHERE version.version = %s",
            (candidate,),
        ),
        seconds=120,
        what="the new version's fairness report",
    )
    assert report
    steps.done("fairness report")
    assert time.monotonic() - steps.started < 600
