import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# An UPDATE with REPLACE: the engine runs it, so it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine

BEFORE = [("provenance", "0003_recommendation_explored")]
AFTER = [("provenance", "0004_recommendation_degraded")]


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
