from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join

from provenance.models import DataSnapshot
from recommender.models import ModelStatusChange, ModelVersion, Movie, Rating, Viewer, Watch
from recommender.selectors import model_version_stable_at
from recsite.admin import ReadOnlyAdmin, ReadOnlyInline, admin_link


@admin.register(Movie)
class MovieAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "year", "genre_list", "rating_count", "watch_count"]
    search_fields = ["slug", "title"]
    list_filter = ["year"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Movie]:
        return (
            super()
            .get_queryset(request)
            .annotate(rating_count=Count("ratings", distinct=True), watch_count=Count("watches", distinct=True))
        )

    @admin.display(description="genres")
    def genre_list(self, movie: Movie) -> str:
        return ", ".join(movie.genres)

    @admin.display(ordering="rating_count", description="ratings")
    def rating_count(self, movie: Movie) -> int:
        return movie.rating_count  # type: ignore[attr-defined]

    @admin.display(ordering="watch_count", description="watched by")
    def watch_count(self, movie: Movie) -> int:
        return movie.watch_count  # type: ignore[attr-defined]


@admin.register(Viewer)
class ViewerAdmin(admin.ModelAdmin):
    list_display = ["id", "age", "gender", "occupation", "rating_count", "created_at"]
    list_filter = ["gender", "occupation"]
    search_fields = ["id"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Viewer]:
        return super().get_queryset(request).annotate(rating_count=Count("ratings"))

    @admin.display(ordering="rating_count", description="ratings")
    def rating_count(self, viewer: Viewer) -> int:
        return viewer.rating_count  # type: ignore[attr-defined]


class ViewerMovieAdmin(ReadOnlyAdmin):
    """Rows about one viewer and one movie (ratings, watches), linked to both."""

    list_select_related = ["movie"]
    search_fields = ["=viewer__id", "movie__slug"]
    show_full_result_count = False

    @admin.display(ordering="viewer_id", description="viewer")
    def viewer_link(self, row: Rating | Watch) -> str:
        return admin_link(Viewer, row.viewer_id, row.viewer_id)

    @admin.display(ordering="movie__slug", description="movie")
    def movie_link(self, row: Rating | Watch) -> str:
        return admin_link(Movie, row.movie_id, row.movie.slug)


@admin.register(Rating)
class RatingAdmin(ViewerMovieAdmin):
    list_display = ["rated_at", "viewer_link", "movie_link", "score", "source"]
    list_filter = ["score", "source"]
    date_hierarchy = "rated_at"


@admin.register(Watch)
class WatchAdmin(ViewerMovieAdmin):
    list_display = ["last_seen_at", "viewer_link", "movie_link", "minutes_watched", "max_minute", "first_seen_at"]
    exclude = ["minutes_bitmap"]


class ServingFilter(admin.SimpleListFilter):
    title = "lifecycle"
    parameter_name = "lifecycle"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("serving", "serving (stable or canary)"),
            ("waiting", "candidates"),
            ("out", "retired, rejected, failed"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        groups = {
            "serving": [ModelVersion.Status.STABLE, ModelVersion.Status.CANARY],
            "waiting": [ModelVersion.Status.CANDIDATE, ModelVersion.Status.TRAINING],
            "out": [ModelVersion.Status.RETIRED, ModelVersion.Status.REJECTED, ModelVersion.Status.FAILED],
        }
        return queryset.filter(status__in=groups[self.value()]) if self.value() in groups else queryset


class StatusChangeInline(ReadOnlyInline):
    model = ModelStatusChange
    fields = ["at", "from_status", "to_status", "reason", "actor"]


class ServedAtForm(forms.Form):
    at = forms.DateTimeField(
        label="At (UTC)",
        help_text="e.g. 2026-11-26 14:30",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}),
    )


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
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
    actions = ["start_release"]
    inlines = [StatusChangeInline]
    exclude = ["metrics", "group_metrics", "gate", "params"]
    readonly_fields = ["pretty_gate", "pretty_metrics", "group_table", "pretty_params"]

    def get_urls(self) -> list:
        return [
            path(
                "served-at/", self.admin_site.admin_view(self.served_at_view), name="recommender_modelversion_served_at"
            ),
            *super().get_urls(),
        ]

    def served_at_view(self, request: HttpRequest) -> HttpResponse:
        """Which version was stable at a moment a person asks about."""
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

    @admin.action(description="Start a canary release (one candidate, 20%%)", permissions=["release"])
    def start_release(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        from releases.services import ReleaseError, release_start

        if queryset.count() != 1:
            self.message_user(request, "choose exactly one candidate version", level=messages.ERROR)
            return
        try:
            release = release_start(candidate=queryset.get(), actor=request.user.get_username())
        except ReleaseError as error:
            self.message_user(request, str(error), level=messages.ERROR)
            return
        self.message_user(request, f"{release} started")

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases.add_release")

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
        return version.code_revision[:12] + ("+dirty" if version.code_revision.endswith("+dirty") else "")

    @admin.display(description="gate")
    def pretty_gate(self, version: ModelVersion) -> str:
        return _pre(version.gate)

    @admin.display(description="metrics")
    def pretty_metrics(self, version: ModelVersion) -> str:
        return _pre(version.metrics)

    @admin.display(description="parameters")
    def pretty_params(self, version: ModelVersion) -> str:
        return _pre(version.params)

    @admin.display(description="per demographic group")
    def group_table(self, version: ModelVersion) -> str:
        rows = [
            (
                dimension,
                group,
                figures.get("viewers"),
                figures.get("ratings"),
                figures.get("rmse"),
                figures.get("ndcg@10"),
            )
            for dimension, groups in sorted(version.group_metrics.items())
            for group, figures in sorted(groups.items())
        ]
        return format_html(
            "<table><tr><th>dimension</th><th>group</th><th>viewers</th><th>ratings</th><th>RMSE</th>"
            "<th>NDCG@10</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )


def _pre(value: object) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))
