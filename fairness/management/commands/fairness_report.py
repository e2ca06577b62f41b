"""python manage.py fairness_report [--version N]: compute, store and print a fairness report."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fairness.services import DIMENSIONS, FairnessError, fairness_report_create
from recommender.models import ModelVersion


class Command(BaseCommand):
    help = "Compute a model version's fairness report (default: the stable version), store it, print a summary."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version names a model version here; Django's own --version (its release) gives way.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", type=int, help="model version number (default: the stable one)")
        parser.add_argument("--bootstrap", type=int, help="resamples per interval (default FAIRNESS_BOOTSTRAP)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["version"] is not None:
            version = ModelVersion.objects.filter(version=options["version"]).first()
            if version is None:
                raise CommandError(f"no model version {options['version']}")
        else:
            version = ModelVersion.objects.filter(status=ModelVersion.Status.STABLE).first()
            if version is None:
                raise CommandError("no stable model version: train one, or name a version with --version")
        if options["bootstrap"] is not None and options["bootstrap"] < 0:
            raise CommandError("--bootstrap must be 0 or more")
        try:
            report = fairness_report_create(version=version, bootstrap=options["bootstrap"], seed=options["seed"])
        except FairnessError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(_summary(report.figures, report.flags, version.version, report.min_group_viewers))


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
        for metric in ("rmse", "ndcg@10"):
            gap = section["disparity"][metric]
            if gap["best"] is not None:
                lines.append(
                    f"  {metric}: best {gap['best']}, worst {gap['worst']}, difference {gap['difference']:.4f}, "
                    f"ratio {gap['ratio']:.3f}, mean absolute deviation {gap['mad']:.4f}"
                )
    diversity = figures["diversity"]
    lines.append(
        f"\nexposure: coverage {diversity['coverage']}, Gini {diversity['gini']}, "
        f"{diversity['never_recommended']:,} of {diversity['catalogue']:,} movies never recommended"
    )
    lines.append("flags: " + ("; ".join(flags) if flags else "none"))
    return "\n".join(lines)


def _interval(value: list[float | None] | None) -> str:
    if not value or value[0] is None:
        return "-"
    figure, low, high = value
    return f"{figure:.4f}" if low is None or high is None else f"{figure:.4f} [{low:.4f}, {high:.4f}]"
