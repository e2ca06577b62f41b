"""python manage.py simulate_loop: the closed feedback loop, without and with exploration.

Each arm runs in a scratch directory of its own (its own SQLite database, data and models), in
a process of its own, so the database this command is pointed at is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fairness.loop import LoopSettings, loop_run


class Command(BaseCommand):
    help = (
        "Simulate N days in which viewers watch what recsite recommends and recsite retrains on it, "
        "once without and once with exploration; print the comparison."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=5)
        parser.add_argument("--viewers", type=int, default=300)
        parser.add_argument("--movies", type=int, default=200)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--exploration", type=int, default=4, help="exploration slots in the second arm")
        parser.add_argument("--arm", type=int, help=DEFAULT_HELP_ARM)
        parser.add_argument("--out", type=Path, help="with --arm: where to write the days' figures (JSON)")

    def handle(self, *args: Any, **options: Any) -> None:
        for name, low, high in (("days", 1, 60), ("viewers", 10, 100_000), ("movies", 20, 27_000)):
            if not low <= options[name] <= high:
                raise CommandError(f"--{name} must be between {low} and {high}")
        if not 0 <= options["exploration"] <= 10:
            raise CommandError("--exploration must be between 0 and 10 slots")
        if options["arm"] is not None:
            self._arm(options)
            return
        results = {}
        for slots in (0, options["exploration"]):
            self.stderr.write(f"running {options['days']} days with {slots} exploration slots ...")
            results[slots] = _arm_in_scratch(options, slots)
        self.stdout.write(_comparison(results, options["exploration"]))

    def _arm(self, options: dict[str, Any]) -> None:
        if options["out"] is None:
            raise CommandError("--arm needs --out")
        loop = LoopSettings(
            seed=options["seed"],
            viewers=options["viewers"],
            movies=options["movies"],
            days=options["days"],
            exploration=options["arm"],
        )
        days = loop_run(settings=loop, directory=Path(settings.DATA_DIR))
        options["out"].write_text(json.dumps(days))


DEFAULT_HELP_ARM = "internal: run one arm with this many slots in the current database"


def _arm_in_scratch(options: dict[str, Any], slots: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="recsite-loop-") as scratch:
        root = Path(scratch)
        environment = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{root}/recsite.sqlite3",
            "DATA_DIR": str(root / "data"),
            "MODEL_DIR": str(root / "models"),
            "DVC_REMOTE": str(root / "dvc-remote"),
            "VAR_DIR": str(root / "var"),
            "RELEASE_AUTO_START": "0",
            "FAIRNESS_AFTER_TRAINING": "0",
            "NOTIFY_EMAILS": "",
            "NOTIFY_SLACK_WEBHOOK": "",
            "LOG_LEVEL": "WARNING",
        }
        manage = Path(settings.BASE_DIR) / "manage.py"
        out = root / "days.json"
        for command in (
            ["migrate", "--no-input", "-v", "0"],
            [
                "simulate_loop", "--arm", str(slots), "--out", str(out), "--days", str(options["days"]),
                "--viewers", str(options["viewers"]), "--movies", str(options["movies"]),
                "--seed", str(options["seed"]),
            ],
        ):  # fmt: skip
            done = subprocess.run(
                [sys.executable, str(manage), *command], env=environment, capture_output=True, text=True, check=False
            )
            if done.returncode:
                raise CommandError(f"the arm with {slots} exploration slots failed:\n{done.stderr[-2000:]}")
        days: list[dict[str, Any]] = json.loads(out.read_text())
        return days


def _comparison(results: dict[int, list[dict[str, Any]]], slots: int) -> str:
    lines = [f"{'day':>3}  {'':<22}{'without exploration':>24}   {f'with {slots} slots':>24}"]
    rows = [
        ("exposure Gini", "gini"),
        ("catalogue coverage", "coverage"),
        ("lists followed by a watch", "followed_share"),
        ("homogenisation (Jaccard)", "homogenisation"),
        ("NDCG@10 vs hidden tastes", "ndcg@10"),
    ]
    for day, (plain, explored) in enumerate(zip(results[0], results[slots], strict=True), start=1):
        for label, key in rows:
            lines.append(f"{day:>3}  {label:<26}{_n(plain.get(key)):>20}   {_n(explored.get(key)):>24}")
        for group in sorted(set(plain["genre_entropy"]) | set(explored["genre_entropy"])):
            lines.append(
                f"{day:>3}  {'genre entropy, ' + group:<26}{_n(plain['genre_entropy'].get(group)):>20}   "
                f"{_n(explored['genre_entropy'].get(group)):>24}"
            )
    return "\n".join(lines)


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
