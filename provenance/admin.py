from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from catalog.identifiers import movie_id_fold
from catalog.selectors import movie_titles
from core.admin_kit import CappedCountPaginator, RangeFilter, ReadOnlyAdmin, RecentFilter, admin_link
from provenance.models import Recommendation
from recommender.models import DataSnapshot, ModelVersion


class LatencyFilter(RangeFilter):
    title = "latency"
    parameter_name = "latency"
    field = "latency_ms"
    buckets = [("fast", "under 5 ms", None, 5), ("slow", "5-25 ms", 5, 25), ("very-slow", "25 ms or more", 25, None)]


class VersionFilter(admin.SimpleListFilter):
    """The versions to choose from come from the registry, not from the answers: listing the
    distinct versions of two million answers read them all (1.2 s on every list page)."""

    title = "model version"
    parameter_name = "version"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(str(number), f"v{number}") for number in ModelVersion.objects.values_list("version", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Recommendation]) -> QuerySet[Recommendation]:
        value = self.value()
        if value is None or not value.isdigit():
            return queryset
        return queryset.filter(model_version__version=int(value))


class StrategyFilter(admin.SimpleListFilter):
    """Fixed choices (serving's strategies), for the same reason as ``VersionFilter``."""

    title = "strategy"
    parameter_name = "strategy"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return list(Recommendation.Strategy.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Recommendation]) -> QuerySet[Recommendation]:
        value = self.value()
        if value in Recommendation.Strategy.values:
            return queryset.filter(strategy=value)
        return queryset


class ServedWithinFilter(RecentFilter):
    title = "served"
    field = "served_at"


LISTED = 3  # movies of an answer shown in the list of answers


@admin.register(Recommendation)
class RecommendationAdmin(ReadOnlyAdmin):
    """Why did viewer V see movie M at time T: search the viewer or the movie, open the row, and
    follow the links to the model version (metrics, code) and its data snapshot.

    The search is exact, never free text: a number is a viewer id, a movie id (slug) finds the
    answers that listed that movie, anything else a request id. (Free text over the lists
    matched years in titles: "13" found viewers 13 and every movie of 2013.)"""

    list_display = [
        "served_at",
        "viewer_id",
        "version_link",
        "snapshot_link",
        "pool",
        "strategy",
        "degraded",
        "latency_ms",
        "first_items",
    ]
    list_filter = [ServedWithinFilter, "pool", StrategyFilter, "degraded", LatencyFilter, VersionFilter]
    list_select_related = ["model_version__snapshot"]
    search_fields = ["=request_id"]
    search_help_text = "a viewer id (exact), a movie id such as the+matrix+1999 (exact), or a request id"
    # No date hierarchy: listing its years and months read every row (11.8 s at 2M answers);
    # the "served" filter narrows by time instead.
    show_full_result_count = False
    paginator = CappedCountPaginator

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Recommendation], search_term: str
    ) -> tuple[QuerySet[Recommendation], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(viewer_id=int(term)), False
        slug = movie_id_fold(term)
        if slug is not None and "+" in slug:
            # The list is comma-separated: the movie is the whole list, its head, its tail or an inner item.
            listed = Q(items=slug) | Q(items__startswith=f"{slug},") | Q(items__endswith=f",{slug}")
            return queryset.filter(listed | Q(items__contains=f",{slug},")), False
        return queryset.filter(request_id=term), False

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

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        # The page's first titles in one query, not three per row.
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        titles = movie_titles(slug for row in rows for slug in row.item_list[:LISTED])
        for row in rows:
            row.first_titles = [titles.get(slug, slug) for slug in row.item_list[:LISTED]]
        return changelist

    @admin.display(description="first movies")
    def first_items(self, row: Recommendation) -> str:
        items = row.item_list
        shown = getattr(row, "first_titles", None) or items[:LISTED]
        return "; ".join(shown) + (f" (+{len(items) - LISTED})" if len(items) > LISTED else "")
