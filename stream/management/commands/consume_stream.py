"""python manage.py consume_stream --source SOURCE: ingest the platform's event stream."""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from prometheus_client import start_http_server

from core.progress import progress_bar
from simulator.services import SimulatorOptions, simulator_events, simulator_world
from stream.models import IngestRun
from stream.services import BatchResult, ConsumerStop, stream_consume
from stream.sources import SourceError, source_open


class Command(BaseCommand):
    help = "Ingest the event stream from kafka://HOST:PORT/TOPIC, file:PATH (file:- for stdin) or simulator."

    def add_arguments(self, parser: CommandParser) -> None:
        default_source = f"kafka://{settings.KAFKA_BOOTSTRAP}/{settings.KAFKA_TOPIC}"
        parser.add_argument("--source", default=default_source, help=f"default: {default_source}")
        parser.add_argument("--max-events", type=int, help="stop after this many lines")
        parser.add_argument("--idle-seconds", type=float, help="stop when no line arrives for this long (Kafka)")
        parser.add_argument("--batch-size", type=int, default=settings.STREAM_BATCH_SIZE)
        parser.add_argument("--group", default=settings.KAFKA_GROUP, help="Kafka consumer group")
        parser.add_argument(
            "--simulator", default="", metavar="KEY=VALUE,...", help="simulator options, e.g. seed=7,viewers=300"
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.STREAM_METRICS_PORT,
            help="serve Prometheus metrics here (0: off)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1 or (options["max_events"] is not None and options["max_events"] < 1):
            raise CommandError("--batch-size and --max-events must be positive")
        simulator_lines = None
        if options["source"] == "simulator":
            try:
                config = SimulatorOptions.parse(options["simulator"])
            except ValueError as error:
                raise CommandError(str(error)) from None
            simulator_lines = simulator_events(simulator_world(config), config)
        try:
            source = source_open(options["source"], kafka_group=options["group"], simulator_lines=simulator_lines)
        except SourceError as error:
            raise CommandError(str(error)) from None
        if options["metrics_port"]:
            start_http_server(options["metrics_port"])

        unit = " B" if source.total is not None else " lines"
        with progress_bar(total=source.total, description=f"ingesting {source.name}", unit=unit) as bar:

            def on_batch(run: IngestRun, result: BatchResult) -> None:
                bar.update(source.done - bar.n)
                bar.set_postfix(lines=run.lines, rejected=run.rejected, refresh=False)

            # docker stop sends SIGTERM, Ctrl-C SIGINT: both end the run cleanly (see ConsumerStop).
            stop = ConsumerStop()
            signal.signal(signal.SIGTERM, stop.handle)
            signal.signal(signal.SIGINT, stop.handle)
            run = stream_consume(
                source=source,
                max_events=options["max_events"],
                idle_seconds=options["idle_seconds"],
                batch_size=options["batch_size"],
                on_batch=on_batch,
                stop=stop,
            )
        self.stdout.write(run.summary())
