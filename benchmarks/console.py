"""The console's pages on a large data set: how long each takes and how many queries it makes.

    .venv/bin/python benchmarks/console.py                       # 1M viewers, 2M answers
    .venv/bin/python benchmarks/console.py --viewers 100000 --answers 200000

A scratch SQLite database (the embedded default) gets a catalogue of 27,000 movies, the viewers,
three model versions and the answers (provenance rows) spread over the last day, written with the
bulk writers the import uses. Then a logged-in client opens each console page five times and
prints the first time, the median and the number of queries. Nothing is asserted: the figures
are for the issue's note and the README.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=1_000_000)
    parser.add_argument("--answers", type=int, default=2_000_000)
    parser.add_argument("--movies", type=int, default=27_000)
    args = parser.parse_args()
    scratch = django_in_scratch("recsite-console-")
    started = time.perf_counter()
    fill(args.viewers, args.movies, args.answers)
    print(
        f"console at scale: {args.viewers:,} viewers, {args.movies:,} movies, {args.answers:,} answers "
        f"(written in {time.perf_counter() - started:.0f}s); scratch {scratch}",
        flush=True,
    )
    _measure()


def django_in_scratch(prefix: str) -> Path:
    """Django set up on a migrated SQLite database in a new scratch directory (under SCALE_DIR)."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("SCALE_DIR")))
    from benchmarks.serving import scratch_environment

    os.environ.update(scratch_environment(scratch))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return scratch


def fill(viewers: int, movies: int, answers: int) -> None:
    from django.db import transaction
    from django.utils import timezone

    from catalog.models import Movie, Viewer
    from core.db import bulk_insert_new, db_datetimes
    from provenance.models import Recommendation
    from provenance.rollup import served_minute_counts, served_minutes_store
    from recommender.models import ModelVersion

    rng = np.random.default_rng(1)
    now = int(timezone.now().timestamp())
    with transaction.atomic():
        bulk_insert_new(
            Movie,
            ["slug", "title", "year", "genres"],
            [(f"movie+{m}+{1950 + m % 70}", f"Movie {m}", 1950 + m % 70, '["Drama"]') for m in range(movies)],
            prepared=frozenset({"genres"}),
        )
        genders, ages = rng.choice(["M", "F"], viewers), rng.choice([18, 25, 35, 45], viewers)
        for start in range(0, viewers, 100_000):
            part = range(start + 1, min(start + 100_001, viewers + 1))
            bulk_insert_new(
                Viewer,
                ["id", "gender", "age", "occupation"],
                [(v, genders[v - 1], int(ages[v - 1]), "writer") for v in part],
            )
        versions = [
            ModelVersion.objects.create(
                version=n,
                status=status,
                ranker="ease",
                rating_algorithm="svd",
                training_started_at=timezone.now(),
                training_finished_at=timezone.now(),
                metrics={"rmse": 0.9 - n / 100, "ndcg@10": 0.2 + n / 100, "coverage@20": 0.3},
                serving_slot=status if status in ("stable", "canary") else None,
            )
            for n, status in ((1, "retired"), (2, "stable"), (3, "canary"))
        ]
    popular = (1.0 / np.arange(1, movies + 1)) / (1.0 / np.arange(1, movies + 1)).sum()
    for start in range(0, answers, 100_000):
        count = min(100_000, answers - start)
        viewer_ids = rng.integers(1, viewers + 1, count)
        served = db_datetimes(now - rng.integers(0, 86_400, count))
        picks = rng.choice(movies, (count, 20), p=popular)
        canary = rng.random(count) < 0.2
        rows = [
            (
                f"bench-{start + i}",
                int(viewer_ids[i]),
                versions[2].pk if canary[i] else versions[1].pk,
                "canary" if canary[i] else "stable",
                "personalized",
                ",".join(f"movie+{m}+{1950 + m % 70}" for m in picks[i]),
                200,
                float(rng.gamma(2.0, 2.0)),
                served[i],
                "bench",
            )
            for i in range(count)
        ]
        with transaction.atomic():
            bulk_insert_new(
                Recommendation,
                [
                    "request_id", "viewer_id", "model_version", "pool", "strategy", "items",
                    "status", "latency_ms", "served_at", "host",
                ],
                rows,
                prepared=frozenset({"served_at"}),
            )  # fmt: skip
    # Written around the recorder, so the rollup is built as migration 0005 builds it.
    served_minutes_store(served_minute_counts(Recommendation.objects.all()))


def _measure() -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from provenance.models import Recommendation
    from recommender.models import ModelVersion

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("bench", "bench@example.org", "bench"))
    answer = Recommendation.objects.order_by("-served_at").values_list("pk", "viewer_id").first()
    assert answer is not None
    answers = reverse("admin:provenance_recommendation_changelist")
    newest = ModelVersion.objects.get(version=3).pk
    pages = [
        ("overview (3 h of traffic charts)", reverse("admin:index")),
        ("answers, first page", answers),
        ("answers of one viewer", answers + f"?q={answer[1]}"),
        ("answers listing one movie", answers + "?q=movie%2B5%2B1955"),
        ("answers, last hour, canary", answers + "?within=1h&pool__exact=canary"),
        ("one answer", reverse("admin:provenance_recommendation_change", args=[answer[0]])),
        ("viewers, first page", reverse("admin:catalog_viewer_changelist")),
        ("one viewer", reverse("admin:catalog_viewer_change", args=[answer[1]])),
        ("movies, first page", reverse("admin:catalog_movie_changelist")),
        ("model versions", reverse("admin:recommender_modelversion_changelist")),
        ("one model version", reverse("admin:recommender_modelversion_change", args=[newest])),
        ("compare versions", reverse("admin:console_compare")),
    ]  # fmt: skip
    for label, path in pages:
        times, queries = [], 0
        for _ in range(5):
            reset_queries()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
            queries = len(captured)
        print(
            f"  {label:<36} first {times[0]:8.1f} ms   median {statistics.median(times):8.1f} ms"
            f"   {queries:3d} queries",
            flush=True,
        )
    started = time.perf_counter()
    response = client.get(reverse("admin:console_provenance_csv") + f"?viewer={answer[1]}")
    rows = b"".join(response.streaming_content).count(b"\n") - 1  # type: ignore[attr-defined]
    label = "export of one viewer (CSV)"
    print(f"  {label:<36} {(time.perf_counter() - started) * 1000:8.1f} ms   {rows} rows")


if __name__ == "__main__":
    main()
