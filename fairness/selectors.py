"""Reads for the fairness pages: a stored report as charts and tables."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from catalog.demographics import DIMENSIONS, group_order
from catalog.models import Watch
from core.charts import Chart, Series, time_axis
from fairness import metrics
from fairness.models import FairnessReport, FeedbackWindow, ServedFairnessReport
from recommender.models import ModelVersion


def fairness_report_latest(version: ModelVersion) -> FairnessReport | None:
    return FairnessReport.objects.filter(model_version=version).order_by("-created_at").first()


def report_dimension(dimension: str) -> str:
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
        for group, row in sorted(groups.items(), key=lambda item: group_order(dimension, item[0]))
    ]


def disparity_rows(report: FairnessReport, dimension: str) -> list[dict[str, Any]]:
    section = report.figures["quality"]["dimensions"][dimension]["disparity"]
    return [{"metric": metric, **figures} for metric, figures in section.items()]


def flag_basis(figures: dict[str, Any], *, flagged: tuple[str, ...]) -> dict[str, Any]:
    """What a report's flags rest on: how many of its disparities could be measured, how many
    pairs of groups it compared, and the false-alarm rate its corrected intervals hold to.
    ``figures`` holds ``dimensions`` (each with its ``disparity``), as both reports store them."""
    measured = sum(
        1
        for section in figures.get("dimensions", {}).values()
        for metric in flagged
        if section.get("disparity", {}).get(metric, {}).get("best")
    )
    comparisons, alpha, confidence = figures.get("comparisons"), figures.get("alpha"), figures.get("confidence")
    if comparisons is None or alpha is None or confidence is None:
        # Stored before disparities had intervals: flags rest on the point figures.
        return {"measured": measured, "text": "Flags rest on the point figures (a report from before intervals)."}
    return {
        "measured": measured,
        "comparisons": comparisons,
        "confidence": confidence,
        "confidence_text": f"{confidence:.2%}",
        "text": (
            f"{comparisons:,} pairs of groups compared. A disparity is flagged only where its interval "
            f"(at {confidence:.2%}, Bonferroni-corrected for those comparisons) lies wholly past its bound: on "
            f"data without a real difference, a report flags something at most {alpha:.0%} of the time."
        ),
    }


def fairness_charts(report: FairnessReport, dimension: str) -> list[Chart]:
    """Per group: NDCG@10 and RMSE with their intervals (small groups marked in the labels),
    the shares of viewers, ratings and watches, and genre variety recommended against watched."""
    rows = quality_rows(report, dimension)
    labels = [f"{row['group']}{' (small)' if row['small'] else ''}" for row in rows]
    note = _interval_note(report.bootstrap, report.min_group_viewers)
    charts = [
        _with_intervals(f"fairness-{key}", title, label, labels, [row[key] for row in rows], note, dimension=dimension)
        for key, title, label in (("ndcg", "NDCG@10 per group", "NDCG@10"), ("rmse", "RMSE per group", "RMSE"))
    ]
    charts.append(
        Chart(
            "fairness-representation",
            "Share of viewers, ratings and watches",
            [row["group"] for row in rows],
            [Series(what, [row["share"].get(what) for row in rows]) for what in ("viewers", "ratings", "watches")],
            kind="bar",
            x_title=_group_axis(dimension),
        )
    )
    charts.append(
        _entropy_chart(
            "fairness-diversity",
            [row["group"] for row in rows],
            [row["diversity"] for row in rows],
            dimension=dimension,
        )
    )
    return charts


def _interval_note(bootstrap: int, min_group: int) -> str:
    return (
        f"Bars: the figure; whiskers: its bootstrap interval ({bootstrap} resamples). "
        f"Groups under {min_group} viewers are marked (small) and not compared."
    )


def _with_intervals(
    key: str,
    title: str,
    label: str,
    labels: list[str],
    triples: list[list[float | None] | None],
    note: str,
    *,
    dimension: str,
) -> Chart:
    """A bar per group with its interval as an error bar ([figure, low, high] each)."""
    figures = [(triple or [None])[0] for triple in triples]
    bounds: list[tuple[float, float] | None] = []
    for triple in triples:
        value = triple or [None, None, None]
        low, high = value[1], value[2]
        bounds.append((low, high) if low is not None and high is not None else None)
    return Chart(
        key,
        title,
        labels,
        [Series(label, figures, errors=bounds)],
        kind="bar",
        unit=label,
        x_title=_group_axis(dimension),
        notes=[note],
    )


def _group_axis(dimension: str) -> str:
    return f"group ({dimension})"


def _entropy_chart(key: str, groups: list[str], diversities: list[dict[str, Any]], *, dimension: str) -> Chart:
    return Chart(
        key,
        "Genre variety: recommended against watched (entropy, bits)",
        groups,
        [
            Series("recommended", [row.get("recommended_entropy") for row in diversities]),
            Series("watched", [row.get("watched_entropy") for row in diversities]),
        ],
        kind="bar",
        unit="bits",
        x_title=_group_axis(dimension),
    )


def served_report_latest() -> ServedFairnessReport | None:
    return ServedFairnessReport.objects.order_by("-start").first()


def served_rows(report: ServedFairnessReport, dimension: str) -> list[dict[str, Any]]:
    section = report.figures["dimensions"][dimension]
    return [
        {"group": group, **row}
        for group, row in sorted(section["groups"].items(), key=lambda item: group_order(dimension, item[0]))
    ]


def served_disparity(report: ServedFairnessReport, dimension: str) -> dict[str, Any]:
    return dict(report.figures["dimensions"][dimension]["disparity"]["follow_rate"])


def served_charts(report: ServedFairnessReport, dimension: str) -> list[Chart]:
    """Per group: how often its lists were followed (with intervals), its share of the answers
    against its share of the viewers served and of all viewers, the genre variety it was shown
    against what it watched, and how often it got a cold-start or explored answer."""
    rows = served_rows(report, dimension)
    labels = [f"{row['group']}{' (small)' if row['small'] else ''}" for row in rows]
    groups = [row["group"] for row in rows]
    return [
        _with_intervals(
            "served-follow",
            f"Lists followed by a watch within {report.follow_hours:g} h",
            "followed",
            labels,
            [row["follow_rate"] for row in rows],
            _interval_note(report.bootstrap, report.min_group_viewers),
            dimension=dimension,
        ),
        Chart(
            "served-shares",
            "Share of the answers, of the viewers served, of all viewers",
            groups,
            [
                Series("answers", [row["answer_share"] for row in rows]),
                Series("viewers served", [row["served_viewer_share"] for row in rows]),
                Series("all viewers", [row["population_share"] for row in rows]),
            ],
            kind="bar",
            x_title=_group_axis(dimension),
        ),
        _entropy_chart("served-diversity", groups, rows, dimension=dimension),
        Chart(
            "served-cold",
            "Cold-start answers and explored places",
            groups,
            [
                Series("cold-start share of answers", [row["cold_start_share"] for row in rows]),
                Series("explored share of places", [row["explored_share"] for row in rows]),
            ],
            kind="bar",
            x_title=_group_axis(dimension),
        ),
    ]


GROUP_LINES = 10  # the largest groups drawn in a per-group trend
WINDOWS_DRAWN = 120  # the latest windows of one size drawn in the trends


def feedback_window_sizes() -> list[timedelta]:
    """The sizes of the windows computed so far, longest first (daily before hourly)."""
    spans = {end - start for start, end in FeedbackWindow.objects.values_list("start", "end")}
    return sorted(spans, reverse=True)


def feedback_window_size(asked: str, sizes: list[timedelta]) -> timedelta | None:
    """The size a page asked for (``?size=`` in seconds), or the longest computed one."""
    for size in sizes:
        if asked == str(int(size.total_seconds())):
            return size
    return sizes[0] if sizes else None


def feedback_windows_latest(size: timedelta | None, count: int | None = None) -> list[FeedbackWindow]:
    """The latest ``count`` windows of ``size``, oldest first, as a trend is read. Windows of one
    size only: a day's figures and an hour's are not points of one line."""
    if size is None:
        return []
    count = count or WINDOWS_DRAWN
    latest: list[FeedbackWindow] = []
    # Newest first, stopping at ``count``: a long history is not read to draw its end.
    for window in FeedbackWindow.objects.order_by("-start").iterator(chunk_size=500):
        if window.end - window.start == size:
            latest.append(window)
            if len(latest) == count:
                break
    return latest[::-1]


def window_size_label(size: timedelta) -> str:
    seconds = int(size.total_seconds())
    if seconds % 86_400 == 0:
        return "daily" if seconds == 86_400 else f"{seconds // 86_400} days"
    if seconds % 3600 == 0:
        return "hourly" if seconds == 3600 else f"{seconds // 3600} hours"
    return f"{seconds // 60} minutes"


def window_label(window: FeedbackWindow) -> str:
    """The window's start with its year; the time of day only for windows shorter than a day."""
    if window.end - window.start >= timedelta(days=1):
        return f"{window.start:%Y-%m-%d}"
    return f"{window.start:%Y-%m-%d %H:%M}"


def feedback_charts(windows: list[FeedbackWindow], dimension: str = DIMENSIONS[0]) -> list[Chart]:
    """The feedback-loop trends over windows (of one size, oldest first): exposure concentration,
    what was shown against what was watched next, consumption diversity (everyone's, per group
    of ``dimension``, a viewer's own) and homogenisation."""
    labels = [window_label(window) for window in windows]

    def figure(key: str) -> list[float | None]:
        return [window.figures.get(key) for window in windows]

    groups = sorted({group for window in windows for group in window.figures.get("genre_entropy", {})})
    hint = (
        f"None of the {len(windows)} windows drawn has this figure: it needs answers (and, for the"
        " correlation, watches in the window after)."
        if windows
        else "No window yet: run manage.py feedback_loops (django-q2 runs it daily)."
    )
    return [
        Chart(
            "feedback-exposure",
            "Echo chamber: exposure concentration",
            labels,
            [Series("Gini of exposure", figure("gini")), Series("catalogue coverage", figure("coverage"))],
            empty_hint=hint,
            x_title=time_axis("window start"),
        ),
        Chart(
            "feedback-echo",
            "Shown in a window against watched in the next (Spearman)",
            labels,
            [Series("correlation", [window.figures.get("echo", {}).get("spearman") for window in windows])],
            empty_hint=hint,
            x_title=time_axis("window start"),
        ),
        Chart(
            "feedback-stopped",
            "Movies recommended for the last time",
            labels,
            [Series("stopped", figure("stopped"))],
            kind="bar",
            empty_hint=hint,
            x_title=time_axis("window start"),
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
            x_title=time_axis("window start"),
        ),
        Chart(
            "feedback-viewer-diversity",
            "Filter bubble: a viewer's own genre entropy (viewers with two movies or more)",
            labels,
            [
                Series(
                    name,
                    [(window.figures.get("viewer_genre_entropy_quartiles") or [None] * 3)[i] for window in windows],
                )
                for i, name in enumerate(("lower quartile", "median", "upper quartile"))
            ],
            unit="bits",
            empty_hint=hint,
            x_title=time_axis("window start"),
        ),
        *_group_trends(windows, labels, dimension, hint),
        Chart(
            "feedback-homogenisation",
            "Homogenisation: mean Jaccard of two viewers' watched sets",
            labels,
            [Series("Jaccard", figure("homogenisation"))],
            empty_hint=hint,
            x_title=time_axis("window start"),
        ),
    ]


def _group_trends(windows: list[FeedbackWindow], labels: list[str], dimension: str, hint: str) -> list[Chart]:
    """Per group of ``dimension``: the genre entropy of what it watched together, and the mean of
    its viewers' own, over windows; the ``GROUP_LINES`` groups with the most active viewers."""
    sizes: Counter[str] = Counter()
    for window in windows:
        for group, row in window.figures.get("groups", {}).get(dimension, {}).items():
            sizes[group] += row.get("viewers", 0)
    shown = sorted(group for group, _ in sizes.most_common(GROUP_LINES))
    note = (
        [f"The {GROUP_LINES} groups with the most active viewers of {len(sizes)}."] if len(sizes) > GROUP_LINES else []
    )

    def series(key: str) -> list[Series]:
        return [
            Series(
                group,
                [window.figures.get("groups", {}).get(dimension, {}).get(group, {}).get(key) for window in windows],
            )
            for group in shown
        ]

    return [
        Chart(
            f"feedback-groups-{key.replace('_', '-')}",
            f"{title} per {dimension}",
            labels,
            series(key),
            unit="bits",
            empty_hint=hint,
            notes=note,
            x_title=time_axis("window start"),
        )
        for key, title in (
            ("entropy", "Genre entropy of what each group watched"),
            ("viewer_entropy", "A viewer's own genre entropy, mean"),
        )
    ]


def viewer_diversity_chart(viewer_id: int, *, days: int = 90) -> Chart:
    """One viewer's filter bubble: the genre entropy of what they started watching each day they
    watched, and of everything they had watched up to that day, over their last ``days`` days."""
    watched = list(
        Watch.objects.filter(viewer_id=viewer_id)
        .order_by("first_seen_at")
        .values_list("first_seen_at", "movie__genres")
    )
    if watched:
        first_day = watched[-1][0].date() - timedelta(days=days - 1)
        earlier = [genres for moment, genres in watched if moment.date() < first_day]
        watched = [(moment, genres) for moment, genres in watched if moment.date() >= first_day]
    else:
        earlier = []
    so_far: Counter[str] = Counter(genre for genres in earlier for genre in genres)
    per_day: dict[str, Counter[str]] = {}
    running: dict[str, float] = {}
    for moment, genres in watched:
        day = f"{moment:%Y-%m-%d}"
        per_day.setdefault(day, Counter()).update(genres)
        so_far.update(genres)
        running[day] = round(metrics.entropy(list(so_far.values())), 4)
    # Every day from the first watched to the last is a label, so that the axis is time: a gap of
    # months between two watches is drawn as months, not as two neighbouring bars.
    days_shown = (
        [f"{watched[0][0].date() + timedelta(days=offset):%Y-%m-%d}" for offset in range(_days_between(watched))]
        if watched
        else []
    )
    return Chart(
        "viewer-diversity",
        "Genre variety of what they watched (entropy)",
        days_shown,
        [
            Series(
                "that day",
                [
                    round(metrics.entropy(list(per_day[day].values())), 4) if day in per_day else None
                    for day in days_shown
                ],
            ),
            Series("everything so far", [running.get(day) for day in days_shown]),
        ],
        unit="bits",
        empty_hint="No watches yet.",
        x_title=time_axis("day"),
    )


def _days_between(watched: list[tuple[datetime, list[str]]]) -> int:
    return (watched[-1][0].date() - watched[0][0].date()).days + 1
