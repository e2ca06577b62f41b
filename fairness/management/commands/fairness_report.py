"""python manage.py fairness_report [--version N | --served [--day YYYY-MM-DD]]: compute, store
and print a fairness report, of a model version or of what was served on a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.demographics import DIMENSIONS
from fairness.models import ServedFairnessReport
from fairness.served import served_report_create
from fairness.services import FairnessError, fairness_report_create
from recommender.models import ModelVersion
from recommender.selectors import model_version_stable


class Command(BaseCommand):
    help = (
        "Compute a model version's fairness report (default: the stable version), or with --served the report "
        "on what was served on a day (default: yesterday, UTC); store it, print a summary."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version names a model version here; Django's own --version (its release) gives way.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", type=int, help="model version number (default: the stable one)")
        parser.add_argument("--bootstrap", type=int, help="resamples per interval (default FAIRNESS_BOOTSTRAP)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--served", action="store_true", help="report on what was served, per group")
        parser.add_argument("--day", help="with --served: the day (YYYY-MM-DD, UTC; default yesterday)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["bootstrap"] is not None and options["bootstrap"] < 0:
            raise CommandError("--bootstrap must be 0 or more")
        if options["served"]:
            self._served(options)
            return
        if options["day"] is not None:
            raise CommandError("--day goes with --served")
        if options["version"] is not None:
            version = ModelVersion.objects.filter(version=options["version"]).first()
            if version is None:
                raise CommandError(f"no model version {options['version']}")
        else:
            version = model_version_stable()
            if version is None:
                raise CommandError("no stable model version: train one, or name a version with --version")
        try:
            report = fairness_report_create(version=version, bootstrap=options["bootstrap"], seed=options["seed"])
        except FairnessError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(_summary(report.figures, report.flags, version.version, report.min_group_viewers))

    def _served(self, options: dict[str, Any]) -> None:
        if options["version"] is not None:
            raise CommandError("--served reports on every version that served; leave out --version")
        try:
            day = date.fromisoformat(options["day"]) if options["day"] else datetime.now(UTC).date() - timedelta(days=1)
        except ValueError:
            raise CommandError(f"--day must be a date as YYYY-MM-DD, not {options['day']!r}") from None
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        try:
            report = served_report_create(
                start=start, end=start + timedelta(days=1), bootstrap=options["bootstrap"], seed=options["seed"]
            )
        except FairnessError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(_served_summary(report))


def _summary(figures: dict[str, Any], flags: list[str], version: int, min_group: int) -> str:
    quality = figures["quality"]
    lines = [
        f"fairness of v{version}: {figures['viewers_evaluated']:,} viewers and "
        f"{figures['ratings_evaluated']:,} ratings held out; groups under {min_group} viewers flagged (*)",
        "overall: " + ", ".join(f"{name} {_interval(value)}" for name, value in quality["overall"].items()),
    ]
    for dimension in DIMENSIONS:
        section = quality["dimensions"][dimension]
        lines.append(f"\n{dimension} ({len(section['groups'])} groups)")
        lines.append(f"  {'group':<34} {'viewers':>8}  {'RMSE':<24} {'NDCG@10':<24}")
        for group, row in section["groups"].items():
            mark = "*" if row["small"] else " "
            lines.append(
                f" {mark}{group[:34]:<34} {row['viewers']:>8,}  {_interval(row.get('rmse')):<24} "
                f"{_interval(row.get('ndcg@10')):<24}"
            )
        lines.extend(_gap_line(metric, section["disparity"][metric]) for metric in ("rmse", "ndcg@10"))
    diversity = figures["diversity"]
    lines.append(
        f"\nexposure: coverage {diversity['coverage']}, Gini {diversity['gini']}, "
        f"{diversity['never_recommended']:,} of {diversity['catalogue']:,} movies never recommended"
    )
    lines.append("flags: " + ("; ".join(flags) if flags else "none"))
    return "\n".join(lines)


def _gap_line(metric: str, gap: dict[str, Any]) -> str:
    if gap["best"] is None:
        return f"  {metric}: not compared ({gap.get('why_not') or 'fewer than two groups large enough to compare'})"
    difference = _bounded(gap["difference"], gap.get("difference_low"), gap.get("difference_high"), 4)
    ratio = _bounded(gap["ratio"], gap.get("ratio_low"), gap.get("ratio_high"), 3)
    return (
        f"  {metric}: best {gap['best']}, worst {gap['worst']}, difference {difference}, "
        f"ratio {ratio}, mean absolute deviation {gap['mad']:.4f}"
    )


def _bounded(value: float, low: float | None, high: float | None, places: int) -> str:
    if low is None or high is None:
        return f"{value:.{places}f}"
    return f"{value:.{places}f} [{low:.{places}f}, {high:.{places}f}]"


def _interval(value: list[float | None] | None) -> str:
    if not value or value[0] is None:
        return "-"
    figure, low, high = value
    return f"{figure:.4f}" if low is None or high is None else f"{figure:.4f} [{low:.4f}, {high:.4f}]"


def _served_summary(report: ServedFairnessReport) -> str:
    figures = report.figures
    lines = [
        f"what was served on {report.start:%Y-%m-%d}: {report.answers:,} answers to {figures['viewers']:,} viewers, "
        f"{figures['followed']:.1%} followed by a watch within {report.follow_hours:g} h; "
        f"groups under {report.min_group_viewers} viewers flagged (*)",
        "versions: " + ", ".join(f"v{row['version']} {row['answers']:,}" for row in figures["versions"]),
    ]
    for dimension in DIMENSIONS:
        section = figures["dimensions"][dimension]
        lines.append(f"\n{dimension} ({len(section['groups'])} groups)")
        lines.append(f"  {'group':<34} {'viewers':>8} {'answers':>9}  {'followed':<24} {'cold start':>10}")
        for group, row in section["groups"].items():
            mark = "*" if row["small"] else " "
            lines.append(
                f" {mark}{group[:34]:<34} {row['viewers']:>8,} {row['answers']:>9,}  "
                f"{_interval(row['follow_rate']):<24} {row['cold_start_share']:>10.1%}"
            )
        lines.append(_gap_line("followed", section["disparity"]["follow_rate"]))
    exposure = figures["exposure"]
    lines.append(
        f"\nexposure: coverage {exposure['coverage']}, Gini {exposure['gini']}, "
        f"{exposure['never_recommended']:,} of {exposure['catalogue']:,} movies never shown"
    )
    lines.append("flags: " + ("; ".join(report.flags) if report.flags else "none"))
    return "\n".join(lines)
