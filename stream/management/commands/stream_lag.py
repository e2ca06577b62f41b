"""python manage.py stream_lag: how far the consumer group is behind the topic, per partition."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from stream.services import stream_lag
from stream.sources import SourceError


class Command(BaseCommand):
    help = "Print the consumer group's lag per partition; --wait SECONDS waits until nothing is left to store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bootstrap", default=settings.KAFKA_BOOTSTRAP)
        parser.add_argument("--topic", default=settings.KAFKA_TOPIC)
        parser.add_argument("--group", default=settings.KAFKA_GROUP)
        parser.add_argument("--wait", type=float, default=0.0, help="wait up to this many seconds for lag 0")

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + options["wait"]
        while True:
            try:
                lag = stream_lag(bootstrap=options["bootstrap"], topic=options["topic"], group=options["group"])
            except SourceError as error:
                raise CommandError(str(error)) from None
            behind = sum(lag.values())
            if not behind or time.monotonic() >= deadline:
                break
            time.sleep(2)
        by_partition = ", ".join(f"{partition}: {count:,}" for partition, count in lag.items()) or "no partitions"
        self.stdout.write(f"{options['group']} on {options['topic']}: {behind:,} behind ({by_partition})")
        if behind and options["wait"]:
            raise CommandError(f"still {behind:,} events behind after {options['wait']:.0f} s")
