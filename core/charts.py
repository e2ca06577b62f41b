"""The chart kit of the console and the fairness pages: what a chart shows, as data.

``core/static/charts/charts.js`` draws it with the vendored Chart.js; selectors build ``Chart``
values, templates include ``charts/chart.html``, and tests check the data without a browser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from django.utils import timezone


def time_axis(what: str = "time") -> str:
    """The title of an axis of times, with their zone: the labels are local times without one."""
    return f"{what} ({timezone.get_current_timezone_name()})"


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float | None]
    # An interval per value, [low, high], drawn as an error bar (a whisker with caps) on it.
    errors: list[tuple[float, float] | None] | None = None
    axis: Literal["y", "y2"] = "y"
    kind: Literal["line", "bar"] | None = None  # the chart's own kind unless set


@dataclass(frozen=True)
class Chart:
    key: str  # unique on its page: the canvas and its data are found by it
    title: str
    labels: list[str]
    series: list[Series]
    kind: Literal["line", "bar"] = "line"
    unit: str = ""  # the y axis's title
    unit_y2: str = ""
    x_title: str = ""  # what the labels are: "group (age)", "time (UTC)"
    stacked: bool = False
    empty_hint: str = "No data yet."
    notes: list[str] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return any(value is not None for series in self.series for value in series.values) and bool(self.labels)

    def config(self) -> dict[str, object]:
        """The Chart.js configuration (colours are the script's: one palette for the console)."""
        datasets: list[dict[str, object]] = []
        for series in self.series:
            dataset: dict[str, object] = {"label": series.label, "data": list(series.values), "yAxisID": series.axis}
            if series.errors is not None:
                dataset["errorBars"] = [list(bounds) if bounds is not None else None for bounds in series.errors]
            if series.kind:
                dataset["type"] = series.kind
            datasets.append(dataset)
        scales: dict[str, object] = {
            "x": {"stacked": self.stacked, "title": {"display": bool(self.x_title), "text": self.x_title}},
            "y": {
                "stacked": self.stacked,
                "beginAtZero": True,
                "title": {"display": bool(self.unit), "text": self.unit},
            },
        }
        if any(series.axis == "y2" for series in self.series):
            scales["y2"] = {
                "position": "right",
                "beginAtZero": True,
                "grid": {"drawOnChartArea": False},
                "title": {"display": bool(self.unit_y2), "text": self.unit_y2},
            }
        return {
            "type": self.kind,
            "data": {"labels": self.labels, "datasets": datasets},
            "options": {"scales": scales},
        }
