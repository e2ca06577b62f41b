"""python manage.py stream_topic --ensure: create the stream's Kafka topic unless it exists."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from stream.services import stream_topic_ensure
from stream.sources import SourceError


class Command(BaseCommand):
    help = "Create the stream's Kafka topic (KAFKA_TOPIC, KAFKA_PARTITIONS partitions) unless it exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ensure", action="store_true", help="create it if missing (the only action)")
        parser.add_argument("--bootstrap", default=settings.KAFKA_BOOTSTRAP)
        parser.add_argument("--topic", default=settings.KAFKA_TOPIC)
        parser.add_argument("--partitions", type=int, default=settings.KAFKA_PARTITIONS)

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["ensure"]:
            raise CommandError("say --ensure to create the topic if it is missing")
        if options["partitions"] < 1:
            raise CommandError("--partitions must be at least 1")
        try:
            created = stream_topic_ensure(
                bootstrap=options["bootstrap"], topic=options["topic"], partitions=options["partitions"]
            )
        except SourceError as error:
            raise CommandError(str(error)) from None
        state = f"created with {options['partitions']} partitions" if created else "exists"
        self.stdout.write(f"topic {options['topic']} at {options['bootstrap']}: {state}")
