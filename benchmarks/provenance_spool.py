"""The cost of recording one answer's provenance on the request path, with the durable spool.

    .venv/bin/python benchmarks/provenance_spool.py [--rows 100000]

Prints microseconds per row for the spool append alone (one JSON line, one write() to an
O_APPEND file) and for the whole ``recorder.record()`` (spool and in-memory queue), in a scratch
VAR_DIR. Nothing there touches the database: the writer thread is off.

Then the writer's side, on a scratch SQLite database in the same VAR_DIR (unless DATABASE_URL is
set): microseconds per row to insert the answers alone and with their minutes' rollup
(``provenance.rollup``), in batches of 500 answers served over one minute, as the recorder's
thread writes them under load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="recsite-spool-bench-")
os.environ["SERVING_THREADS"] = "0"
os.environ.setdefault("DATABASE_URL", f"sqlite:///{os.environ['VAR_DIR']}/bench.sqlite3")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from provenance.models import Recommendation  # noqa: E402
from provenance.recorder import RecommendationRecorder  # noqa: E402
from provenance.rollup import recommendations_insert  # noqa: E402
from provenance.spool import Spool, row_to_line  # noqa: E402

ITEMS = ",".join(f"some+movie+title+{number}+1999" for number in range(20))  # a full answer


def _rows(count: int, *, prefix: str = "", spread_seconds: float = 0.0) -> list[Recommendation]:
    now = timezone.now()
    return [
        Recommendation(
            request_id=f"{prefix}{number:032x}",
            viewer_id=number,
            model_version_id=1,
            pool="stable",
            strategy="personalized",
            items=ITEMS,
            status=200,
            latency_ms=2.5,
            served_at=now + timedelta(seconds=spread_seconds * number / count),
            host="bench:1",
        )
        for number in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    rows = _rows(args.rows)

    spool = Spool()
    started = time.perf_counter()
    for row in rows:
        spool.append(row_to_line(row))
    append_us = (time.perf_counter() - started) / len(rows) * 1e6

    recorder = RecommendationRecorder(max_pending=len(rows) * 2, batch_size=500, interval=60)
    started = time.perf_counter()
    for row in rows:
        recorder.record(row)
    record_us = (time.perf_counter() - started) / len(rows) * 1e6

    # Both runs spooled every row: half the bytes on disk are one run.
    size = sum(path.stat().st_size for path in Path(os.environ["VAR_DIR"]).rglob("*.jsonl"))
    print(f"{len(rows):,} rows of a 20-item answer, {size / 2 / len(rows):.0f} bytes per spooled row")
    print(f"spool append alone          {append_us:6.1f} us per row")
    print(f"recorder.record (spool+queue) {record_us:4.1f} us per row")
    _writer(args.rows)


def _writer(count: int, batch: int = 500) -> None:
    call_command("migrate", verbosity=0)
    figures = {}
    for label, rollup in (("insert alone", False), ("insert and rollup", True)):
        rows = _rows(count, prefix=label[:1], spread_seconds=60.0)
        for row in rows:
            row.model_version_id = None  # no registry in the scratch database
        started = time.perf_counter()
        for start in range(0, count, batch):
            if rollup:
                recommendations_insert(rows[start : start + batch], batch_size=batch)
            else:
                Recommendation.objects.bulk_create(rows[start : start + batch], ignore_conflicts=True)
        figures[label] = (time.perf_counter() - started) / count * 1e6
    for label, us in figures.items():
        print(f"writer, {label:<20} {us:6.1f} us per row ({batch} a batch, over one minute)")


if __name__ == "__main__":
    main()
