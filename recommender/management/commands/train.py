"""python manage.py train: snapshot the data, train, evaluate, gate and register a model version."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommender.learning.ranking import RANKERS, SELECT
from recommender.learning.rating import RATING_ALGORITHMS
from recommender.models import DataSnapshot
from recommender.services import TrainingError, model_train


class Command(BaseCommand):
    help = "Take a data snapshot (or use --snapshot), train, evaluate, gate and register a model version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--algorithm", choices=list(RATING_ALGORITHMS), help="rating model (default: TRAIN_RATING_ALGORITHM)"
        )
        parser.add_argument(
            "--ranker",
            choices=[SELECT, *RANKERS],
            help=f"ranking model, or {SELECT!r} to let model selection choose (default: TRAIN_RANKER)",
        )
        parser.add_argument("--snapshot", type=int, help="train on this DataSnapshot id instead of a new one")
        parser.add_argument("--tune", action="store_true", help="grid-search SVD parameters on the training split")
        parser.add_argument("--seed", type=int, help="split and model seed (default: TRAIN_SEED)")

    def handle(self, *args: Any, **options: Any) -> None:
        snapshot = None
        if options["snapshot"] is not None:
            snapshot = DataSnapshot.objects.filter(pk=options["snapshot"]).first()
            if snapshot is None:
                raise CommandError(f"no data snapshot with id {options['snapshot']}")
        started = time.perf_counter()

        def progress(step: str) -> None:
            self.stderr.write(f"[{time.perf_counter() - started:6.1f}s] {step}")

        try:
            version = model_train(
                rating_algorithm=options["algorithm"],
                ranker=options["ranker"],
                snapshot=snapshot,
                tune=options["tune"],
                seed=options["seed"],
                actor="train command",
                progress=progress,
            )
        except TrainingError as error:
            raise CommandError(f"training failed: {error}") from None
        metrics = version.metrics
        verdict = "passed the gate" if version.gate_passed else "rejected: " + "; ".join(version.gate_reasons)
        self.stdout.write(
            f"v{version.version} {version.status} ({version.ranker} ranker): RMSE {metrics.get('rmse')}, "
            f"NDCG@10 {metrics.get('ndcg@10')} "
            f"(popularity {metrics.get('popularity', {}).get('ndcg@10')}), trained on {version.snapshot} "
            f"in {version.training_seconds:.1f}s; {verdict}"
        )
