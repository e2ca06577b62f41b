"""python manage.py simulate: play the streaming platform and write its event log."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.kafka import KAFKA_SCHEME, KafkaAddress
from core.progress import progress_bar
from simulator.services import (
    SimulatorOptions,
    simulator_end,
    simulator_events,
    simulator_publish,
    simulator_world,
    simulator_write,
)


class Command(BaseCommand):
    help = "Generate a simulated world and its event stream (to a file, standard output or Kafka)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--viewers", type=int, default=500)
        parser.add_argument("--movies", type=int, default=400)
        parser.add_argument("--sessions-per-viewer", type=float, default=8.0)
        parser.add_argument("--days", type=float, default=7.0)
        parser.add_argument(
            "--end", help="when the simulated days end: now, or an ISO date-time (default: they start 2023-10-01)"
        )
        parser.add_argument("--junk-rate", type=float, default=0.0, help="share of damaged lines mixed in (0-1)")
        parser.add_argument(
            "--older-focus",
            type=float,
            default=1.0,
            help="how closely viewers aged 45 and over choose by their tastes (default 1: as closely as the others)",
        )
        parser.add_argument("--out", default="-", help="PATH, - for standard output, or kafka://HOST:PORT/TOPIC")
        parser.add_argument("--world-out", type=Path, help="also write viewers and movies (MovieLens layout) here")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["viewers"] < 1 or options["movies"] < 20:
            raise CommandError("--viewers must be at least 1 and --movies at least 20")
        if not 0 <= options["junk_rate"] < 1:
            raise CommandError("--junk-rate must be between 0 and 1")
        if not 0 <= options["older_focus"] <= 1:
            raise CommandError("--older-focus must be between 0 and 1")
        try:
            end = simulator_end(options["end"]) if options["end"] else None
        except ValueError as error:
            raise CommandError(str(error)) from None
        config = SimulatorOptions(
            seed=options["seed"],
            viewers=options["viewers"],
            movies=options["movies"],
            sessions_per_viewer=options["sessions_per_viewer"],
            days=options["days"],
            junk_rate=options["junk_rate"],
            older_focus=options["older_focus"],
            end=end,
        )
        started = time.perf_counter()
        world = simulator_world(config)
        if options["world_out"]:
            world.write_metadata(options["world_out"])
        lines = simulator_events(world, config)
        out: str = options["out"]
        with progress_bar(total=None, description="simulating", unit=" lines") as bar:
            tick = lambda: bar.update(10_000)  # noqa: E731
            if out.startswith(KAFKA_SCHEME):
                try:
                    address = KafkaAddress.parse(out)
                except ValueError as error:
                    raise CommandError(str(error)) from None
                count = simulator_publish(lines=lines, bootstrap=address.bootstrap, topic=address.topic, on_line=tick)
            elif out == "-":
                count = simulator_write(lines=lines, out=sys.stdout.buffer, on_line=tick)
                sys.stdout.flush()
            else:
                Path(out).parent.mkdir(parents=True, exist_ok=True)
                with Path(out).open("wb") as handle:
                    count = simulator_write(lines=lines, out=handle, on_line=tick)
        self.stderr.write(
            f"simulated {len(world.viewers):,} viewers, {len(world.movies):,} movies: {count:,} lines to {out} "
            f"in {time.perf_counter() - started:.1f}s (seed {config.seed})"
        )
