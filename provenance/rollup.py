"""The per-minute rollup of the answers (``ServedMinute``): requests, errors and a latency
histogram per pool and minute, so that charts over hours read a few hundred rows, not the
hundreds of thousands of answers behind them.

Every writer of answers goes through ``recommendations_insert``, which inserts them (ignoring
duplicates) and then recomputes, from the table, the minutes they were served in. A minute is
always recomputed whole, never incremented: a retried batch or a spool file recovered twice
cannot count an answer twice.

Two writers (gunicorn workers, a worker recovering a dead one's spool) may recompute one minute
at once, and the one that read first may write last. Answers are only ever added and never
change, and each recomputation reads after its own insert has committed, so a later read sees
a superset of an earlier one's answers: a minute's row is replaced only by a count that is
larger (``requests__lt``). Equal counts mean the same answers. The row is therefore never left
behind what the table holds, without a lock between writers.

The latency buckets are fixed here, as a Prometheus histogram's are: changing
``LATENCY_BOUNDS_MS`` needs a migration that rebuilds the rollup (``served_minutes_store`` over
``served_minute_counts`` of every answer, as migration 0005 does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Case, Count, IntegerField, Model, Q, QuerySet, Value, When
from django.db.models.functions import Floor

from core.db import EpochSeconds
from provenance.models import Recommendation, ServedMinute

# Upper bounds of the latency histogram (ms), as a Prometheus histogram's buckets: a p99 over
# any span is interpolated from the summed counts.
LATENCY_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2500, 5000, 10000)
MINUTE = timedelta(minutes=1)


@dataclass
class MinuteCounts:
    latency_counts: list[int]
    errors: int = 0

    @property
    def requests(self) -> int:
        return sum(self.latency_counts)


def latency_bucket() -> Case:
    return Case(
        *(When(latency_ms__lt=bound, then=Value(i)) for i, bound in enumerate(LATENCY_BOUNDS_MS)),
        default=Value(len(LATENCY_BOUNDS_MS)),
        output_field=IntegerField(),
    )


def minute_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def served_minute_counts(answers: QuerySet[Any]) -> dict[tuple[datetime, str], MinuteCounts]:
    """The counts per (minute, pool) of ``answers``, grouped by the database."""
    rows = (
        # Minutes since the epoch, computed by the database in C: Django's TruncMinute is a
        # Python function per row on SQLite (3.2 s for 250,000 answers).
        answers.annotate(minute=Floor(EpochSeconds("served_at") / Value(60)), latency_bucket=latency_bucket())
        .values("minute", "pool", "latency_bucket")
        .annotate(requests=Count("id"), errors=Count("id", filter=Q(status__gte=500)))
        .order_by()
    )
    counts: dict[tuple[datetime, str], MinuteCounts] = {}
    for row in rows:
        key = (datetime.fromtimestamp(int(row["minute"]) * 60, tz=UTC), row["pool"])
        minute = counts.setdefault(key, MinuteCounts([0] * (len(LATENCY_BOUNDS_MS) + 1)))
        minute.latency_counts[row["latency_bucket"]] += row["requests"]
        minute.errors += row["errors"]
    return counts


def served_minutes_store(
    counts: Mapping[tuple[datetime, str], MinuteCounts], *, model: type[Model] = ServedMinute
) -> None:
    """Write recomputed counts, each replacing its minute's row only if it counts more answers
    (the module's docstring says why that is enough). ``model`` is the migration's historical
    model when a migration rebuilds the rollup."""
    manager = model._default_manager
    for (minute, pool), figures in counts.items():
        values = {"requests": figures.requests, "errors": figures.errors, "latency_counts": figures.latency_counts}
        behind = manager.filter(minute=minute, pool=pool, requests__lt=figures.requests)
        if behind.update(**values):
            continue
        # No row yet, or one as full already, which the insert ignores; a row another writer
        # inserted in between, with fewer answers, is brought up by the second update.
        manager.bulk_create([model(minute=minute, pool=pool, **values)], ignore_conflicts=True)
        behind.update(**values)


def served_minutes_refresh(moments: Iterable[datetime]) -> None:
    """Recompute the minutes these moments fall in from the answers table."""
    starts = sorted({minute_start(moment) for moment in moments})
    if not starts:
        return
    spans = [[starts[0], starts[0] + MINUTE]]
    for start in starts[1:]:
        if start == spans[-1][1]:
            spans[-1][1] = start + MINUTE  # consecutive minutes: one range for the index
        else:
            spans.append([start, start + MINUTE])
    within = Q()
    for since, until in spans:
        within |= Q(served_at__gte=since, served_at__lt=until)
    served_minutes_store(served_minute_counts(Recommendation.objects.filter(within)))


def recommendations_insert(rows: Sequence[Recommendation], *, batch_size: int = 500) -> None:
    """Insert answers, ignoring those already in (their request id is unique), then bring the
    rollup of their minutes up to date. Not inside a transaction: the recomputation must read
    the insert as committed for the rollup's guarantee to hold."""
    for start in range(0, len(rows), batch_size):
        Recommendation.objects.bulk_create(rows[start : start + batch_size], ignore_conflicts=True)
    served_minutes_refresh(row.served_at for row in rows)
