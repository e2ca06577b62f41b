"""python manage.py release start|status|promote|abort|pause|resume"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.options import options_parse
from recommender.models import ModelVersion
from releases.analysis import Thresholds
from releases.models import Release
from releases.services import RELEASE_DECISIONS, ReleaseError, release_active, release_start


class Command(BaseCommand):
    help = "Run canary releases: start one, show the running one, or promote, abort, pause or resume it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["start", "status", "promote", "abort", "pause", "resume"])
        parser.add_argument("--candidate", type=int, help="with start: the candidate version (default: the newest)")
        parser.add_argument(
            "--steps",
            default=",".join(map(str, settings.RELEASE_STEPS)),
            help="with start: canary weights, e.g. 10,25,50",
        )
        parser.add_argument(
            "--interval",
            type=int,
            default=settings.RELEASE_INTERVAL_SECONDS,
            help="with start: seconds per check window",
        )
        parser.add_argument(
            "--min-step",
            type=int,
            default=settings.RELEASE_MIN_STEP_SECONDS,
            help="with start: minimum seconds per step",
        )
        parser.add_argument(
            "--threshold",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="with start: an analysis setting, e.g. min_requests=100 or failure_limit=2 (repeatable)",
        )
        parser.add_argument("--reason", default="", help="why (recorded with the decision)")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = "release command"
        release: Release | None
        try:
            if options["action"] == "start":
                steps = self._steps(options["steps"])
                release = release_start(
                    candidate=self._candidate(options["candidate"]),
                    steps=steps,
                    interval_seconds=options["interval"],
                    min_step_seconds=options["min_step"],
                    thresholds=self._thresholds(options["threshold"]),
                    actor=actor,
                )
            elif options["action"] == "status":
                release = release_active() or Release.objects.first()
                if release is None:
                    self.stdout.write("no release yet")
                    return
            else:
                release = release_active()
                if release is None:
                    raise CommandError(f"no release is running to {options['action']}")
                RELEASE_DECISIONS[options["action"]](release=release, actor=actor, reason=options["reason"])
        except ReleaseError as error:
            raise CommandError(str(error)) from None
        if release is None:
            raise CommandError("no release")
        release.refresh_from_db()
        self.stdout.write(self._status(release))

    def _candidate(self, number: int | None) -> ModelVersion:
        candidates = ModelVersion.objects.filter(status=ModelVersion.Status.CANDIDATE)
        version = candidates.filter(version=number).first() if number else candidates.order_by("-version").first()
        if version is None:
            raise CommandError(f"no candidate version {number}" if number else "no candidate version to release")
        return version

    def _steps(self, text: str) -> list[int]:
        try:
            return [int(part) for part in text.split(",")]
        except ValueError:
            raise CommandError(f"--steps must be comma-separated whole percentages, not {text!r}") from None

    def _thresholds(self, pairs: list[str]) -> dict[str, int | float]:
        try:
            return options_parse(Thresholds, pairs, what="threshold")
        except ValueError as error:
            raise CommandError(str(error)) from None

    def _status(self, release: Release) -> str:
        last = release.analysis_runs.first()
        check = f"; last check {last.verdict} at {last.at:%H:%M:%S}" if last else "; not checked yet"
        stable = f"v{release.stable.version}" if release.stable else "none"
        return (
            f"v{release.candidate.version} vs stable {stable}: {release.state} at {release.weight}% "
            f"(step {release.step_index + 1} of {len(release.steps)}: {release.steps}), "
            f"{release.failed_checks} failed checks{check}"
        )
