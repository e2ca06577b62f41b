"""python manage.py play --url URL: the simulated platform, live, against a running recsite."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.kafka import KAFKA_SCHEME, KafkaAddress
from simulator.player import Player, http_ask, http_wait_ready
from simulator.services import simulator_publish
from simulator.world import World
from stream.services import stream_consume
from stream.sources import BatchSource


class Command(BaseCommand):
    help = (
        "Play the simulated platform live: its viewers ask the running service for lists over HTTP, "
        "watch and rate by their hidden tastes, and the platform's log goes to the stream."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8082", help="the running recsite (default: the demo's)")
        # The world must be the one the service learned from: the same seed and sizes as simulate's.
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--viewers", type=int, default=500)
        parser.add_argument("--movies", type=int, default=400)
        parser.add_argument("--rate", type=float, default=2.0, help="recommendation requests per second")
        parser.add_argument("--speed", type=float, default=60.0, help="watched minutes per real minute")
        parser.add_argument("--requests", type=int, help="stop after this many requests")
        parser.add_argument("--seconds", type=float, help="stop after this long")
        parser.add_argument(
            "--wait",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="first wait this long for the service to be ready",
        )
        parser.add_argument(
            "--out",
            default="ingest",
            help="ingest (into this database, as the consumer does) or kafka://HOST:PORT/TOPIC",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["viewers"] < 1 or options["movies"] < 20:
            raise CommandError("--viewers must be at least 1 and --movies at least 20")
        if options["rate"] <= 0 or options["speed"] <= 0:
            raise CommandError("--rate and --speed must be positive")
        for bound in ("requests", "seconds"):
            if options[bound] is not None and options[bound] <= 0:
                raise CommandError(f"--{bound} must be positive")
        out: str = options["out"]
        if out != "ingest" and not out.startswith(KAFKA_SCHEME):
            raise CommandError(f"--out must be ingest or kafka://HOST:PORT/TOPIC, not {out!r}")
        if options["wait"] > 0 and not http_wait_ready(options["url"], seconds=options["wait"]):
            raise CommandError(f"{options['url']} was not ready (GET /readyz) within {options['wait']:g} s")
        world = World.generate(seed=options["seed"], viewers=options["viewers"], movies=options["movies"])
        player = Player(
            world=world,
            ask=http_ask(options["url"]),
            rate=options["rate"],
            speed=options["speed"],
            seed=options["seed"],
        )

        def stop(signum: int, _frame: FrameType | None) -> None:
            self.stderr.write(f"{signal.Signals(signum).name}: stopping after what is due")
            player.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stderr.write(
            f"playing {len(world.viewers):,} viewers against {options['url']} at {options['rate']:g} requests/s "
            f"(watching {options['speed']:g}x faster than real time), log to {out}"
        )
        batches = player.batches(requests=options["requests"], seconds=options["seconds"])
        if out == "ingest":
            run = stream_consume(source=BatchSource(batches, name="play"), batch_size=settings.STREAM_BATCH_SIZE)
            stored = f"ingest run {run.pk}: {run.lines:,} lines, {run.rejected:,} rejected"
        else:
            try:
                address = KafkaAddress.parse(out)
            except ValueError as error:
                raise CommandError(str(error)) from None
            sent = simulator_publish(
                lines=(line for batch in batches for line in batch), bootstrap=address.bootstrap, topic=address.topic
            )
            stored = f"{sent:,} lines to {out}"
        stats = player.stats
        self.stdout.write(
            f"played {stats.requests:,} requests ({stats.answered:,} answered, {stats.failed:,} failed), "
            f"{stats.from_list:,} viewings from a list and {stats.own_choice:,} of their own; {stored}"
        )
