from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from recsite.admin import ReadOnlyAdmin
from stream.models import IngestRun, ObservedRecommendation, RejectedLine, RejectionOverflow


class ResponseTimeFilter(admin.SimpleListFilter):
    title = "response time"
    parameter_name = "speed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("fast", "under 100 ms"), ("slow", "100-800 ms"), ("timeout", "over 800 ms")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "fast":
            return queryset.filter(response_ms__lt=100)
        if self.value() == "slow":
            return queryset.filter(response_ms__gte=100, response_ms__lte=800)
        if self.value() == "timeout":
            return queryset.filter(response_ms__gt=800)
        return queryset


@admin.register(ObservedRecommendation)
class ObservedRecommendationAdmin(ReadOnlyAdmin):
    list_display = ["requested_at", "viewer_id", "status", "result_count", "response_ms", "host"]
    list_filter = ["status", ResponseTimeFilter]
    search_fields = ["=viewer__id", "results"]
    date_hierarchy = "requested_at"
    show_full_result_count = False


@admin.register(RejectedLine)
class RejectedLineAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "reason", "detail", "length", "excerpt", "source"]
    list_filter = ["reason"]
    search_fields = ["raw"]

    @admin.display(description="line")
    def excerpt(self, line: RejectedLine) -> str:
        return line.raw[:80]


@admin.register(RejectionOverflow)
class RejectionOverflowAdmin(ReadOnlyAdmin):
    list_display = ["reason", "count", "last_at"]


@admin.register(IngestRun)
class IngestRunAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at",
        "source",
        "status",
        "lines",
        "watches",
        "ratings",
        "recommendations",
        "rejected",
        "rate",
    ]
    list_filter = ["status"]

    @admin.display(description="lines/s")
    def rate(self, run: IngestRun) -> str:
        return f"{run.lines_per_second:,.0f}" if run.lines_per_second else "-"
