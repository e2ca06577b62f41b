from __future__ import annotations

from django.contrib import admin

from core.admin_kit import RangeFilter, ReadOnlyAdmin, counted
from stream.models import IngestRun, ObservedRecommendation, RejectedLine, RejectionOverflow


class ResponseTimeFilter(RangeFilter):
    title = "response time"
    parameter_name = "speed"
    field = "response_ms"
    buckets = [
        ("fast", "under 100 ms", None, 100),
        ("slow", "100-800 ms", 100, 800),
        ("timeout", "800 ms or more", 800, None),
    ]


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
        counted("lines"),
        counted("watches", "watch lines"),
        counted("ratings"),
        counted("recommendations"),
        counted("rejected"),
        "rate",
    ]
    list_filter = ["status"]

    @admin.display(description="lines/s")
    def rate(self, run: IngestRun) -> str:
        return f"{run.lines_per_second:,.0f}" if run.lines_per_second else "-"
