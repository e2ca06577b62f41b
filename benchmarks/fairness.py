"""The daily fairness report on what was served, and the feedback windows, at the platform's scale.

    .venv/bin/python benchmarks/fairness.py                       # 1M viewers, 2M answers, 2M watches
    .venv/bin/python benchmarks/fairness.py --viewers 100000 --answers 200000 --watches 200000

A scratch SQLite database (the embedded default) gets the console benchmark's catalogue, viewers
and a day of answers (``benchmarks/console.py``), movies of five genre mixes, and a day of watches:
half of them a movie an answer showed the viewer, started within two hours of it, the rest drawn
by popularity. Then it times ``served_report_create`` on that day (default bootstrap) and
``feedback_windows_compute`` over it, with their peak memory. Nothing is asserted: the figures are
for the issue's note and the README.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GENRE_MIXES = (["Drama"], ["Comedy"], ["Drama", "Romance"], ["Action", "Thriller"], ["Comedy", "Romance"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=1_000_000)
    parser.add_argument("--answers", type=int, default=2_000_000)
    parser.add_argument("--watches", type=int, default=2_000_000)
    parser.add_argument("--movies", type=int, default=27_000)
    args = parser.parse_args()
    from benchmarks.console import django_in_scratch, fill

    scratch = django_in_scratch("recsite-fairness-")
    started = time.perf_counter()
    fill(args.viewers, args.movies, args.answers)
    _genres()
    _watches(args.watches)
    print(
        f"fairness at scale: {args.viewers:,} viewers, {args.movies:,} movies, {args.answers:,} answers and "
        f"{args.watches:,} watches in a day (written in {time.perf_counter() - started:.0f}s); scratch {scratch}",
        flush=True,
    )
    _measure()


def _genres() -> None:
    from django.db.models import F

    from catalog.models import Movie

    for index, genres in enumerate(GENRE_MIXES):
        Movie.objects.alias(mix=F("id") % len(GENRE_MIXES)).filter(mix=index).update(genres=genres)


def _watches(total: int) -> None:
    from django.db import transaction

    from catalog.models import Movie, Watch
    from core.db import EpochSeconds, bulk_insert_new, db_datetimes, integer_columns
    from provenance.models import Recommendation

    rng = np.random.default_rng(2)
    movies = integer_columns(Movie.objects.values_list("id"))[:, 0]
    answers = Recommendation.objects.annotate(epoch=EpochSeconds("served_at"))
    sample = answers.order_by("?")[: total // 2].values_list("viewer_id", "epoch", "items")
    slug_to_id = dict(Movie.objects.values_list("slug", "id"))
    followed = [
        (viewer, slug_to_id[items.split(",")[int(rng.integers(0, 20))]], moment + int(rng.integers(0, 7200)))
        for viewer, moment, items in sample
    ]
    viewers = int(Recommendation.objects.order_by("-viewer_id").values_list("viewer_id", flat=True).first() or 1)
    popular = (1.0 / np.arange(1, len(movies) + 1)) / (1.0 / np.arange(1, len(movies) + 1)).sum()
    rest = total - len(followed)
    late = int(time.time()) - 86_400
    drawn = zip(
        rng.integers(1, viewers + 1, rest).tolist(),
        movies[rng.choice(len(movies), rest, p=popular)].tolist(),
        (late + rng.integers(0, 86_400, rest)).tolist(),
        strict=True,
    )
    rows: dict[tuple[int, int], int] = {}
    for viewer, movie, moment in [*followed, *drawn]:
        rows.setdefault((viewer, movie), moment)  # a viewer starts a movie once
    keys = list(rows)
    moments = db_datetimes(np.array([rows[key] for key in keys], dtype=np.int64))
    for start in range(0, len(keys), 100_000):
        part = range(start, min(start + 100_000, len(keys)))
        with transaction.atomic():
            bulk_insert_new(
                Watch,
                ["viewer_id", "movie_id", "first_seen_at", "last_seen_at", "minutes_watched", "max_minute"],
                [(keys[i][0], keys[i][1], moments[i], moments[i], 30, 30) for i in part],
                prepared=frozenset({"first_seen_at", "last_seen_at"}),
            )


def _measure() -> None:
    from django.utils import timezone

    from fairness.feedback import feedback_windows_compute
    from fairness.served import served_report_create

    end = timezone.now()
    start = end - timedelta(days=1, hours=1)
    started = time.perf_counter()
    report = served_report_create(start=start, end=end)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"served report   {report.answers:,} answers, {report.figures['viewers']:,} viewers, "
        f"{report.figures['followed']:.1%} followed, bootstrap {report.bootstrap}: {seconds:.1f}s, peak {peak:.2f} GB",
        flush=True,
    )
    started = time.perf_counter()
    windows = feedback_windows_compute(window=timedelta(hours=6), until=end)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"feedback        {len(windows)} windows of 6 h: {seconds:.1f}s, peak {peak:.2f} GB", flush=True)


if __name__ == "__main__":
    main()
