"""python manage.py feedback_loops [--hours H] [--days N]: compute the feedback-loop figures per window."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from fairness.feedback import feedback_windows_compute


class Command(BaseCommand):
    help = "Compute echo-chamber and filter-bubble figures per time window from the stream and the served answers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=int, default=24, help="window length in hours (default 24)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the sampled viewer pairs")
        parser.add_argument("--days", type=int, help="only the last N days (default: the whole history)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["hours"] < 1:
            raise CommandError("--hours must be 1 or more")
        if options["days"] is not None and options["days"] < 1:
            raise CommandError("--days must be 1 or more")
        since = timezone.now() - timedelta(days=options["days"]) if options["days"] else None
        windows = feedback_windows_compute(window=timedelta(hours=options["hours"]), since=since, seed=options["seed"])
        if not windows:
            self.stdout.write("no answers or watches yet: nothing to compute")
            return
        self.stdout.write(f"{'window':<17} {'answers':>8} {'coverage':>9} {'Gini':>6} {'echo':>7} "
                          f"{'stopped':>8} {'entropy':>8} {'homog.':>7}")  # fmt: skip
        for window in windows:
            f = window.figures
            echo = f["echo"].get("spearman")
            self.stdout.write(
                f"{window.start:%Y-%m-%d %H:%M}  {f['answers']:>8,} {_n(f['coverage'], 3):>9} {_n(f['gini'], 3):>6} "
                f"{_n(echo, 3):>7} {f['stopped']:>8} {_n(f['viewer_genre_entropy'], 2):>8} "
                f"{_n(f['homogenisation'], 4):>7}"
            )


def _n(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
