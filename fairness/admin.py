from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from catalog.demographics import DIMENSIONS
from core.admin_kit import ReadOnlyAdmin, admin_link
from fairness import selectors
from fairness.models import FairnessReport, FeedbackWindow, ServedFairnessReport
from fairness.services import FLAGGED
from recommender.models import ModelVersion


class ByDimensionAdmin(ReadOnlyAdmin):
    """A report's page, one dimension at a time (``?dimension=``; an unknown one shows the first)."""

    def dimension_context(self, report: Any, dimension: str) -> dict[str, Any]:
        raise NotImplementedError

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        report = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if report is not None:
            dimension = selectors.report_dimension(request.GET.get("dimension", ""))
            context.update(dimension=dimension, dimensions=DIMENSIONS, **self.dimension_context(report, dimension))
        return super().change_view(request, object_id, form_url, context)


class FlaggedFilter(admin.SimpleListFilter):
    """Reports with a disparity past the bounds (a flag), or without one."""

    title = "flagged"
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("yes", "with a flag"), ("no", "without")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.exclude(flags=[])
        if self.value() == "no":
            return queryset.filter(flags=[])
        return queryset


@admin.register(FairnessReport)
class FairnessReportAdmin(ByDimensionAdmin):
    """A version's fairness report: per-group quality with intervals, representation, diversity
    and exposure, as charts and tables; one dimension at a time (``?dimension=``)."""

    list_display = ["created_at", "version_link", "flag_count", "bootstrap", "min_group_viewers", "seconds"]
    list_select_related = ["model_version"]
    list_filter = [FlaggedFilter, "model_version__version"]
    change_form_template = "fairness/report.html"
    fields = ["model_version", "created_at", "bootstrap", "seed", "min_group_viewers", "seconds"]

    @admin.display(ordering="model_version__version", description="model")
    def version_link(self, report: FairnessReport) -> str:
        return admin_link(ModelVersion, report.model_version_id, f"v{report.model_version.version}")

    @admin.display(description="disparities past the bounds")
    def flag_count(self, report: FairnessReport) -> int:
        return len(report.flags)

    def dimension_context(self, report: FairnessReport, dimension: str) -> dict[str, Any]:
        return {
            "rows": selectors.quality_rows(report, dimension),
            "disparities": selectors.disparity_rows(report, dimension),
            "basis": selectors.flag_basis(report.figures["quality"], flagged=FLAGGED),
            "charts": selectors.fairness_charts(report, dimension),
            "diversity": report.figures["diversity"],
            "overall": report.figures["quality"]["overall"],
        }


@admin.register(ServedFairnessReport)
class ServedFairnessReportAdmin(ByDimensionAdmin):
    """What was served in a day, per group: how often it was followed, how each group was
    served, the variety it was shown; one dimension at a time (``?dimension=``)."""

    list_display = ["start", "end", "answers", "followed", "flag_count", "bootstrap", "seconds"]
    change_form_template = "fairness/served_report.html"
    fields = ["start", "end", "computed_at", "answers", "follow_hours", "bootstrap", "seed", "min_group_viewers"]

    @admin.display(description="followed by a watch")
    def followed(self, report: ServedFairnessReport) -> object:
        return report.figures.get("followed")

    @admin.display(description="disparities past the bounds")
    def flag_count(self, report: ServedFairnessReport) -> int:
        return len(report.flags)

    def dimension_context(self, report: ServedFairnessReport, dimension: str) -> dict[str, Any]:
        return {
            "rows": selectors.served_rows(report, dimension),
            "disparity": selectors.served_disparity(report, dimension),
            "basis": selectors.flag_basis(report.figures, flagged=("follow_rate",)),
            "charts": selectors.served_charts(report, dimension),
            "exposure": report.figures["exposure"],
        }


class DimensionChangeList(ChangeList):
    """A change list whose ``?dimension=`` picks the charts' groups rather than filtering rows."""

    def get_filters_params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        lookup = super().get_filters_params(params)
        lookup.pop("dimension", None)
        lookup.pop("size", None)
        return lookup


@admin.register(FeedbackWindow)
class FeedbackWindowAdmin(ReadOnlyAdmin):
    """Feedback-loop figures per window, with their trends charted above the list."""

    list_display = ["start", "end", "answers", "coverage", "gini", "stopped", "homogenisation"]
    ordering = ["-start"]  # the latest first, as the charts end with them
    change_list_template = "fairness/feedback_windows.html"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return DimensionChangeList

    fields = ["start", "end", "computed_at", "figures"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        dimension = selectors.report_dimension(request.GET.get("dimension", ""))
        sizes = selectors.feedback_window_sizes()
        size = selectors.feedback_window_size(request.GET.get("size", ""), sizes)
        windows = selectors.feedback_windows_latest(size)
        context = {
            "charts": selectors.feedback_charts(windows, dimension),
            "dimension": dimension,
            "dimensions": DIMENSIONS,
            "sizes": [(int(each.total_seconds()), selectors.window_size_label(each)) for each in sizes],
            "size": int(size.total_seconds()) if size else None,
            "drawn": len(windows),
            "through": selectors.window_label(windows[-1]) if windows else None,
        }
        return super().changelist_view(request, {**(extra_context or {}), **context})

    @admin.display(description="answers")
    def answers(self, window: FeedbackWindow) -> object:
        return window.figures.get("answers")

    @admin.display(description="coverage")
    def coverage(self, window: FeedbackWindow) -> object:
        return window.figures.get("coverage")

    @admin.display(description="Gini of exposure")
    def gini(self, window: FeedbackWindow) -> object:
        return window.figures.get("gini")

    @admin.display(description="stopped being recommended")
    def stopped(self, window: FeedbackWindow) -> object:
        return window.figures.get("stopped")

    @admin.display(description="homogenisation")
    def homogenisation(self, window: FeedbackWindow) -> object:
        return window.figures.get("homogenisation")
