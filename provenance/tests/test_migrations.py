import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# An UPDATE with REPLACE: the engine runs it, so it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine

BEFORE = [("provenance", "0003_recommendation_explored")]
AFTER = [("provenance", "0004_recommendation_degraded")]
LATEST = [("provenance", "0005_served_minute")]


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_a_degraded_suffix_becomes_the_flag_and_back(transactional_db):
    from django.utils import timezone

    old = _migrate(BEFORE).get_model("provenance", "Recommendation")
    for n, strategy in enumerate(["personalized-degraded", "cold-start", "history-degraded"]):
        old.objects.create(
            request_id=f"r{n}", viewer_id=1, pool="stable", strategy=strategy, items="a+1", latency_ms=1.0,
            served_at=timezone.now(), host="test",
        )  # fmt: skip

    new = _migrate(AFTER).get_model("provenance", "Recommendation")
    rows = sorted(new.objects.values_list("request_id", "strategy", "degraded"))
    assert rows == [("r0", "personalized", True), ("r1", "cold-start", False), ("r2", "history", True)]

    back = _migrate(BEFORE).get_model("provenance", "Recommendation")
    assert sorted(back.objects.values_list("strategy", flat=True)) == [
        "cold-start", "history-degraded", "personalized-degraded",
    ]  # fmt: skip
    _migrate(AFTER)
    _migrate(LATEST)


def test_the_rollup_is_built_from_the_answers_served_before_it(transactional_db):
    from datetime import UTC, datetime, timedelta

    old = _migrate(AFTER).get_model("provenance", "Recommendation")
    at = datetime(2026, 12, 4, 10, 0, 30, tzinfo=UTC)
    for n, (pool, latency, status, later) in enumerate(
        [("stable", 3.0, 200, 0), ("stable", 30.0, 503, 0), ("canary", 3.0, 200, 0), ("stable", 3.0, 200, 1)]
    ):
        old.objects.create(
            request_id=f"r{n}", viewer_id=1, pool=pool, strategy="personalized", items="a+1", latency_ms=latency,
            status=status, served_at=at + timedelta(minutes=later), host="test",
        )  # fmt: skip

    minutes = _migrate(LATEST).get_model("provenance", "ServedMinute")
    rows = {(row.minute.minute, row.pool): (row.requests, row.errors) for row in minutes.objects.all()}
    assert rows == {(0, "stable"): (2, 1), (0, "canary"): (1, 0), (1, "stable"): (1, 0)}
