"""Reads for the fairness pages: a stored report as charts and tables."""

from __future__ import annotations

from typing import Any

from core.charts import Chart, Series
from fairness.models import FairnessReport, FeedbackWindow
from fairness.services import DIMENSIONS
from recommender.models import ModelVersion


def fairness_report_latest(version: ModelVersion) -> FairnessReport | None:
    return FairnessReport.objects.filter(model_version=version).order_by("-created_at").first()


def report_dimension(report: FairnessReport, dimension: str) -> str:
    """The dimension a page asked for, or the first one (an unknown name is not an error)."""
    return dimension if dimension in DIMENSIONS else DIMENSIONS[0]


def quality_rows(report: FairnessReport, dimension: str) -> list[dict[str, Any]]:
    groups = report.figures["quality"]["dimensions"][dimension]["groups"]
    representation = report.figures["representation"].get(dimension, {})
    diversity = report.figures["diversity"]["groups"].get(dimension, {})
    return [
        {
            "group": group,
            "viewers": row.get("viewers", 0),
            "small": row.get("small", False),
            "rmse": row.get("rmse"),
            "mae": row.get("mae"),
            "ndcg": row.get("ndcg@10"),
            "recall": row.get("recall@10"),
            "share": representation.get(group, {}),
            "diversity": diversity.get(group, {}),
        }
        for group, row in groups.items()
    ]


def disparity_rows(report: FairnessReport, dimension: str) -> list[dict[str, Any]]:
    section = report.figures["quality"]["dimensions"][dimension]["disparity"]
    return [{"metric": metric, **figures} for metric, figures in section.items()]


def fairness_charts(report: FairnessReport, dimension: str) -> list[Chart]:
    """Per group: NDCG@10 and RMSE with their intervals (small groups marked in the labels),
    the shares of viewers, ratings and watches, and genre variety recommended against watched."""
    rows = quality_rows(report, dimension)
    labels = [f"{row['group']}{' (small)' if row['small'] else ''}" for row in rows]

    def figure(name: str) -> list[float | None]:
        return [(row[name] or [None])[0] for row in rows]

    def interval(name: str) -> list[tuple[float, float] | None]:
        bounds: list[tuple[float, float] | None] = []
        for row in rows:
            value = row[name] or [None, None, None]
            bounds.append((value[1], value[2]) if value[1] is not None and value[2] is not None else None)
        return bounds

    note = (
        f"Bars: the figure; the second bars: its bootstrap interval ({report.bootstrap} resamples). "
        f"Groups under {report.min_group_viewers} viewers are marked (small) and not compared."
    )
    charts = [
        Chart(
            f"fairness-{key}",
            title,
            labels,
            [Series(label, figure(key)), Series("interval", [None] * len(rows), ranges=interval(key))],
            kind="bar",
            notes=[note],
        )
        for key, title, label in (("ndcg", "NDCG@10 per group", "NDCG@10"), ("rmse", "RMSE per group", "RMSE"))
    ]
    charts.append(
        Chart(
            "fairness-representation",
            "Share of viewers, ratings and watches",
            [row["group"] for row in rows],
            [Series(what, [row["share"].get(what) for row in rows]) for what in ("viewers", "ratings", "watches")],
            kind="bar",
        )
    )
    charts.append(
        Chart(
            "fairness-diversity",
            "Genre variety: recommended against watched (entropy, bits)",
            [row["group"] for row in rows],
            [
                Series("recommended", [row["diversity"].get("recommended_entropy") for row in rows]),
                Series("watched", [row["diversity"].get("watched_entropy") for row in rows]),
            ],
            kind="bar",
            unit="bits",
        )
    )
    return charts


def feedback_charts(windows: list[FeedbackWindow]) -> list[Chart]:
    """The feedback-loop trends over windows: exposure concentration, what was shown against
    what was watched next, consumption diversity and homogenisation."""
    labels = [f"{window.start:%m-%d %H:%M}" for window in windows]

    def figure(key: str) -> list[float | None]:
        return [window.figures.get(key) for window in windows]

    groups = sorted({group for window in windows for group in window.figures.get("genre_entropy", {})})
    hint = "No window yet: run manage.py feedback_loops (django-q2 runs it daily)."
    return [
        Chart(
            "feedback-exposure",
            "Echo chamber: exposure concentration",
            labels,
            [Series("Gini of exposure", figure("gini")), Series("catalogue coverage", figure("coverage"))],
            empty_hint=hint,
        ),
        Chart(
            "feedback-echo",
            "Shown in a window against watched in the next (Spearman)",
            labels,
            [Series("correlation", [window.figures.get("echo", {}).get("spearman") for window in windows])],
            empty_hint=hint,
        ),
        Chart(
            "feedback-stopped",
            "Movies recommended for the last time",
            labels,
            [Series("stopped", figure("stopped"))],
            kind="bar",
            empty_hint=hint,
        ),
        Chart(
            "feedback-diversity",
            "Filter bubble: genre entropy of what was watched",
            labels,
            [
                *(
                    Series(group, [window.figures.get("genre_entropy", {}).get(group) for window in windows])
                    for group in groups
                ),
                Series("a viewer's own (mean)", figure("viewer_genre_entropy")),
            ],
            unit="bits",
            empty_hint=hint,
        ),
        Chart(
            "feedback-homogenisation",
            "Homogenisation: mean Jaccard of two viewers' watched sets",
            labels,
            [Series("Jaccard", figure("homogenisation"))],
            empty_hint=hint,
        ),
    ]
