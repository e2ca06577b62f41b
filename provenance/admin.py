from __future__ import annotations

from django.contrib import admin

from core.admin_kit import RangeFilter, ReadOnlyAdmin, admin_link
from provenance.models import Recommendation
from recommender.models import DataSnapshot, ModelVersion


class LatencyFilter(RangeFilter):
    title = "latency"
    parameter_name = "latency"
    field = "latency_ms"
    buckets = [("fast", "under 5 ms", None, 5), ("slow", "5-25 ms", 5, 25), ("very-slow", "25 ms or more", 25, None)]


@admin.register(Recommendation)
class RecommendationAdmin(ReadOnlyAdmin):
    """Why did viewer V see movie M at time T: search the viewer or the movie, open the row, and
    follow the links to the model version (metrics, code) and its data snapshot."""

    list_display = [
        "served_at",
        "viewer_id",
        "version_link",
        "snapshot_link",
        "pool",
        "strategy",
        "latency_ms",
        "first_items",
    ]
    list_filter = ["pool", "strategy", LatencyFilter, "model_version__version"]
    list_select_related = ["model_version__snapshot"]
    search_fields = ["=viewer_id", "items", "=request_id"]
    date_hierarchy = "served_at"
    show_full_result_count = False

    @admin.display(ordering="model_version__version", description="model")
    def version_link(self, row: Recommendation) -> str:
        if row.model_version is None:
            return "-"
        return admin_link(ModelVersion, row.model_version_id, f"v{row.model_version.version}")

    @admin.display(description="data")
    def snapshot_link(self, row: Recommendation) -> str:
        if row.model_version is None or row.model_version.snapshot is None:
            return "-"
        snapshot = row.model_version.snapshot
        return admin_link(DataSnapshot, snapshot.pk, snapshot.content_hash[:12])

    @admin.display(description="items")
    def first_items(self, row: Recommendation) -> str:
        items = row.item_list
        return ", ".join(items[:3]) + (f" (+{len(items) - 3})" if len(items) > 3 else "")
