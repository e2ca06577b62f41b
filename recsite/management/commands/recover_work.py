"""python manage.py recover_work: run before the django-q2 cluster starts (the compose worker's
command). Work that a killed or stopped process left half done is reconciled: a training whose
process is gone is marked failed, its files removed, and a new one queued at once; an ingest run
whose consumer on this host is gone is marked abandoned.

``--check`` is the worker's health check instead: the database answers and the cluster's
processes (sentinel, monitor, pusher, workers) are running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.db import database_answers
from recommender.services import model_training_recover
from stream.services import ingest_runs_abandon


def _cluster_processes() -> int:
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"manage.py\x00qcluster" in cmdline.read_bytes():
                count += 1
        except OSError:
            continue  # the process ended while being read
    return count


class Command(BaseCommand):
    help = "Reconcile work left half done by a process that is gone; --check: the worker's health check."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="check the worker's health instead")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check"]:
            if not database_answers():
                raise CommandError("the database does not answer")
            # The sentinel and at least its monitor, pusher and one worker.
            if (processes := _cluster_processes()) < 4:
                raise CommandError(f"the django-q2 cluster has {processes} processes running, not 4 or more")
            self.stdout.write("ok")
            return
        for version in model_training_recover():
            self.stdout.write(f"v{version.version}: {version.error}; a new training is queued")
        for run in ingest_runs_abandon():
            self.stdout.write(f"ingest run {run.pk}: {run.error}")
