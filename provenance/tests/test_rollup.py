import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from provenance.models import Recommendation, ServedMinute
from provenance.rollup import (
    LATENCY_BOUNDS_MS,
    recommendations_insert,
    served_minute_counts,
    served_minutes_refresh,
    served_minutes_store,
)

# Grouping by a minute computed in SQL and the guarded update: the engine runs them.
pytestmark = pytest.mark.engine

NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _answer(n: int, *, pool: str = "stable", at: datetime = NOON, latency_ms: float = 3.0, status: int = 200):
    return Recommendation(
        request_id=f"r{n}", viewer_id=1, pool=pool, strategy="personalized", items="a+1",
        latency_ms=latency_ms, status=status, served_at=at, host="test",
    )  # fmt: skip


def _rollup() -> dict[tuple[datetime, str], tuple[int, int, list[int]]]:
    return {
        (row.minute, row.pool): (row.requests, row.errors, row.latency_counts) for row in ServedMinute.objects.all()
    }


def _recount() -> dict[tuple[datetime, str], tuple[int, int, list[int]]]:
    counts = served_minute_counts(Recommendation.objects.all())
    return {key: (value.requests, value.errors, value.latency_counts) for key, value in counts.items()}


def test_inserted_answers_are_counted_per_minute_pool_and_latency_bucket(db):
    recommendations_insert(
        [
            _answer(1, at=NOON + timedelta(seconds=5)),
            _answer(2, at=NOON + timedelta(seconds=59.9), latency_ms=30.0, status=503),
            _answer(3, pool="canary", at=NOON + timedelta(seconds=20), latency_ms=20_000.0),
            _answer(4, at=NOON + timedelta(minutes=1)),
        ]
    )

    rollup = _rollup()
    assert set(rollup) == {(NOON, "stable"), (NOON, "canary"), (NOON + timedelta(minutes=1), "stable")}
    requests, errors, latency = rollup[(NOON, "stable")]
    assert (requests, errors) == (2, 1)
    assert latency[LATENCY_BOUNDS_MS.index(5)] == 1  # 3 ms: under 5
    assert latency[LATENCY_BOUNDS_MS.index(50)] == 1  # 30 ms: under 50
    assert rollup[(NOON, "canary")][2][-1] == 1  # past the last bound


def test_a_retried_batch_and_a_twice_recovered_spool_count_each_answer_once(db):
    batch = [_answer(n, at=NOON + timedelta(seconds=n)) for n in range(10)]
    recommendations_insert(batch)
    recommendations_insert(batch)  # the database answered but the writer did not hear it
    recommendations_insert([*batch[:4], _answer(10, at=NOON + timedelta(seconds=30))])

    assert _rollup()[(NOON, "stable")][0] == 11
    assert _rollup() == _recount()


def test_a_late_answer_brings_its_old_minute_up_to_date(db):
    recommendations_insert([_answer(1, at=NOON)])
    recommendations_insert([_answer(2, at=NOON + timedelta(hours=1)), _answer(3, at=NOON)])  # recovered from a spool

    assert _rollup()[(NOON, "stable")][0] == 2
    assert _rollup() == _recount()


def test_a_recount_read_before_a_later_insert_does_not_overwrite_the_fuller_one(db):
    recommendations_insert([_answer(1)])
    stale = served_minute_counts(Recommendation.objects.all())  # a writer reads, then stalls
    recommendations_insert([_answer(2), _answer(3)])

    served_minutes_store(stale)  # ...and writes last

    assert _rollup()[(NOON, "stable")][0] == 3


def test_refreshing_a_minute_without_new_answers_changes_nothing(db):
    recommendations_insert([_answer(1)])
    before = _rollup()

    served_minutes_refresh([NOON + timedelta(seconds=30), NOON + timedelta(minutes=5)])

    assert _rollup() == before


@pytest.mark.mysql
def test_writers_racing_on_one_minute_leave_the_rollup_equal_to_the_answers(transactional_db):
    """Four threads, each a worker's recorder, insert into the same two minutes at once."""
    start = threading.Barrier(4)

    def writer(worker: int) -> None:
        from django.db import connection as own

        try:
            start.wait()
            for batch in range(15):
                rows = [
                    _answer(worker * 10_000 + batch * 100 + n, pool=("stable", "canary")[n % 2],
                            at=NOON + timedelta(seconds=(batch * 7 + n) % 120))
                    for n in range(20)
                ]  # fmt: skip
                recommendations_insert(rows)
        finally:
            own.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        for done in [pool.submit(writer, worker) for worker in range(4)]:
            done.result(timeout=120)  # a writer's error is raised here

    assert sum(requests for requests, _, _ in _rollup().values()) == 4 * 15 * 20
    assert _rollup() == _recount()
