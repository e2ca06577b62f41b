from __future__ import annotations

from typing import Any, TypedDict

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html_join
from django_stubs_ext import WithAnnotations

from core.admin_kit import ReadOnlyAdmin, ReadOnlyInline, admin_link, counted
from recommender.models import DataSnapshot, ModelStatusChange, ModelVersion
from recommender.selectors import model_version_stable_at


class _SnapshotCounts(TypedDict):
    model_count: int


class ServingFilter(admin.SimpleListFilter):
    title = "lifecycle"
    parameter_name = "lifecycle"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [
            ("serving", "serving (stable or canary)"),
            ("waiting", "candidates"),
            ("out", "retired, rejected, failed"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> QuerySet[ModelVersion]:
        groups = {
            "serving": [ModelVersion.Status.STABLE, ModelVersion.Status.CANARY],
            "waiting": [ModelVersion.Status.CANDIDATE, ModelVersion.Status.TRAINING],
            "out": [ModelVersion.Status.RETIRED, ModelVersion.Status.REJECTED, ModelVersion.Status.FAILED],
        }
        value = self.value()
        return queryset.filter(status__in=groups[value]) if value in groups else queryset


class StatusChangeInline(ReadOnlyInline):
    model = ModelStatusChange
    fields = ["at", "from_status", "to_status", "reason", "actor"]


class ServedAtForm(forms.Form):
    at = forms.DateTimeField(
        label="At (UTC)",
        help_text="e.g. 2026-11-26 14:30",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}),
    )


class ModelVersionAdmin(ReadOnlyAdmin):
    """The registry's list of versions and its "which version served at" page. Registered once,
    by the console (``console.admin``), which adds the release actions (``releases.admin``) and
    the version's own page: gate, metrics, groups and lineage as tables."""

    list_display = [
        "version",
        "status",
        "ranker",
        "rating_algorithm",
        "rmse_column",
        "ndcg_column",
        "popularity_ndcg",
        "snapshot_link",
        "training_finished_at",
        "revision",
    ]
    list_filter = [ServingFilter, "status", "ranker", "rating_algorithm"]
    list_select_related = ["snapshot"]
    inlines = [StatusChangeInline]

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "served-at/", self.admin_site.admin_view(self.served_at_view), name="recommender_modelversion_served_at"
            ),
            *super().get_urls(),
        ]

    def served_at_view(self, request: HttpRequest) -> HttpResponse:
        """Which version was stable at a moment a person asks about (for those who may view versions)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ServedAtForm(request.GET or None)
        answer = None
        if form.is_valid():
            answer = {"at": form.cleaned_data["at"], "version": model_version_stable_at(form.cleaned_data["at"])}
        context = {
            **self.admin_site.each_context(request),
            "title": "Which model version served at a given time?",
            "form": form,
            "answer": answer,
            "changes": ModelStatusChange.objects.select_related("model_version").order_by("-at")[:50],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/recommender/modelversion/served_at.html", context)

    @admin.display(ordering="metrics__rmse", description="RMSE")
    def rmse_column(self, version: ModelVersion) -> str:
        return f"{version.rmse:.4f}" if version.rmse is not None else "-"

    @admin.display(description="NDCG@10")
    def ndcg_column(self, version: ModelVersion) -> str:
        return f"{version.ndcg_at_10:.4f}" if version.ndcg_at_10 is not None else "-"

    @admin.display(description="popularity NDCG@10")
    def popularity_ndcg(self, version: ModelVersion) -> str:
        value = version.metrics.get("popularity", {}).get("ndcg@10")
        return f"{value:.4f}" if value is not None else "-"

    @admin.display(description="data")
    def snapshot_link(self, version: ModelVersion) -> str:
        if version.snapshot is None:
            return "-"
        return admin_link(DataSnapshot, version.snapshot_id, version.snapshot.content_hash[:12])

    @admin.display(description="code")
    def revision(self, version: ModelVersion) -> str:
        return version.code_revision[:8] + ("+dirty" if version.code_revision.endswith("+dirty") else "")


@admin.register(DataSnapshot)
class DataSnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "short_hash",
        "status",
        counted("rating_rows", "ratings"),
        counted("interaction_rows", "interactions"),
        counted("viewer_count", "viewers"),
        counted("movie_count", "movies"),
        "window_end",
        "model_count",
        "dvc_short",
    ]
    list_filter = ["status"]
    search_fields = ["content_hash", "dvc_md5"]
    readonly_fields = ["versions_trained"]

    @admin.display(description="versions trained on it")
    def versions_trained(self, snapshot: DataSnapshot) -> str:
        versions = list(snapshot.model_versions.order_by("version").values_list("pk", "version", "status"))
        if not versions:
            return "none yet"
        return format_html_join(
            ", ", "{}", ((admin_link(ModelVersion, pk, f"v{number} ({status})"),) for pk, number, status in versions)
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[DataSnapshot]:
        queryset: QuerySet[DataSnapshot] = super().get_queryset(request)
        return queryset.annotate(model_count=Count("model_versions"))

    @admin.display(ordering="content_hash", description="content hash")
    def short_hash(self, snapshot: DataSnapshot) -> str:
        return snapshot.content_hash[:12]

    @admin.display(ordering="dvc_md5", description="DVC md5")
    def dvc_short(self, snapshot: DataSnapshot) -> str:
        # The whole hash is on the snapshot's page; twelve characters tell snapshots apart here.
        return snapshot.dvc_md5[:12] + (".dir" if snapshot.dvc_md5.endswith(".dir") else "")

    @admin.display(ordering="model_count", description="models trained")
    def model_count(self, snapshot: WithAnnotations[DataSnapshot, _SnapshotCounts]) -> int:
        return snapshot.model_count
