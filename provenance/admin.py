from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from provenance.models import DataSnapshot
from recsite.admin import ReadOnlyAdmin


@admin.register(DataSnapshot)
class DataSnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "short_hash",
        "status",
        "rating_rows",
        "interaction_rows",
        "viewer_count",
        "movie_count",
        "window_end",
        "model_count",
        "dvc_md5",
    ]
    list_filter = ["status"]
    search_fields = ["content_hash", "dvc_md5"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DataSnapshot]:
        return super().get_queryset(request).annotate(model_count=Count("model_versions"))

    @admin.display(ordering="content_hash", description="content hash")
    def short_hash(self, snapshot: DataSnapshot) -> str:
        return snapshot.content_hash[:16]

    @admin.display(ordering="model_count", description="models trained")
    def model_count(self, snapshot: DataSnapshot) -> int:
        return snapshot.model_count  # type: ignore[attr-defined]
