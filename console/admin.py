"""The console's pages for rows of the apps below: each app registers its own admin, and the
console replaces five registrations with pages that join across apps (as ``releases.admin``
does for model versions): a viewer's whole story, the answers that listed a movie, an answer's
provenance, a version's gate and metrics as tables, a release's checks and charts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from catalog.admin import MovieAdmin, ViewerAdmin
from catalog.models import Movie, Viewer
from console import selectors
from fairness.selectors import fairness_report_latest, viewer_diversity_chart
from provenance.admin import RecommendationAdmin
from provenance.models import Recommendation
from recommender.models import ModelVersion
from recommender.selectors import model_version_stable
from releases.admin import ReleasableModelVersionAdmin, ReleaseAdmin
from releases.analysis import BEHAVIOURAL_METRIC
from releases.models import Release


def _replace(model: type[Any], model_admin: type[admin.ModelAdmin[Any]]) -> None:
    admin.site.unregister(model)
    admin.site.register(model, model_admin)


class ConsoleViewerAdmin(ViewerAdmin):
    change_form_template = "console/viewer.html"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        viewer = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if viewer is not None:
            context.update(
                history=selectors.viewer_history(viewer),
                activity_chart=selectors.viewer_activity_chart(viewer),
                diversity_chart=viewer_diversity_chart(viewer.pk),
            )
        return super().change_view(request, object_id, form_url, context)


class ConsoleMovieAdmin(MovieAdmin):
    readonly_fields = ["answers_listing"]

    @admin.display(description="answers")
    def answers_listing(self, movie: Movie) -> str:
        # The answers list searches a movie id exactly (provenance.admin).
        url = reverse("admin:provenance_recommendation_changelist")
        return format_html(
            '<a id="movie-answers" href="{}?{}">the answers that listed it</a>', url, urlencode({"q": movie.slug})
        )


class ConsoleRecommendationAdmin(RecommendationAdmin):
    change_form_template = "console/answer.html"
    change_list_template = "console/answers.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The export takes the list's viewer search and pool filter, so what is listed is what is exported.
        context = dict(extra_context or {})
        term = request.GET.get("q", "").strip()
        params = {"viewer": term} if term.isdigit() else {}
        if request.GET.get("pool__exact"):
            params["pool"] = request.GET["pool__exact"]
        context["export_query"] = urlencode(params)
        return super().changelist_view(request, context)

    fields = ["request_id", "served_at", "viewer_id", "pool", "strategy", "status", "latency_ms", "host"]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        answer = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if answer is not None:
            version = answer.model_version
            context.update(
                items=selectors.answer_items(answer),
                version=version,
                snapshot=selectors.snapshot_of(version),
                served_under=selectors.release_serving(answer),
                status_when_served=selectors.version_status_at(version, answer.served_at) if version else None,
                viewer_known=Viewer.objects.filter(pk=answer.viewer_id).exists(),
            )
        return super().change_view(request, object_id, form_url, context)


class ConsoleModelVersionAdmin(ReleasableModelVersionAdmin):
    change_form_template = "console/model_version.html"
    readonly_fields = []
    fields = [
        "version",
        "status",
        "ranker",
        "rating_algorithm",
        "snapshot",
        "training_started_at",
        "training_finished_at",
        "code_revision",
        "artifact_path",
        "artifact_sha256",
        "artifact_bytes",
        "dvc_md5",
        "canary_weight",
        "error",
    ]
    actions = ["start_release", "compare"]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        version = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if version is not None:
            stable = model_version_stable()
            answers, viewers = selectors.version_usage([version]).get(version.pk, (0, 0))
            context.update(
                gate_checks=selectors.gate_rows(version),
                selection=selectors.selection_rows(version),
                selection_summary=version.metrics.get("selection") or {},
                metric_rows=selectors.metric_rows(version, stable),
                stable=stable,
                params=selectors.flat_params(version.params),
                groups=_group_rows(version),
                small_group=settings.FAIRNESS_MIN_GROUP_VIEWERS,
                timeline=selectors.status_timeline(version),
                answers=answers,
                viewers=viewers,
                fairness=fairness_report_latest(version),
                releases=list(version.releases.order_by("-created_at")),
            )
        return super().change_view(request, object_id, form_url, context)

    @admin.action(description="Compare the selected versions")
    def compare(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> HttpResponse:
        numbers = sorted(queryset.values_list("version", flat=True))
        if len(numbers) < 2:
            self.message_user(request, "choose two or more versions to compare", level=messages.WARNING)
            return HttpResponseRedirect(request.get_full_path())
        query = urlencode({"versions": ",".join(str(number) for number in numbers)})
        return HttpResponseRedirect(f"{reverse('admin:console_compare')}?{query}")


def _group_rows(version: ModelVersion) -> list[dict[str, Any]]:
    """Per-group figures, each flagged when its group is too small to compare."""
    overall = version.ndcg_at_10
    rows = []
    for dimension, groups in sorted(version.group_metrics.items()):
        for group, figures in sorted(groups.items()):
            viewers = figures.get("viewers") or 0
            ndcg = figures.get("ndcg@10")
            rows.append(
                {
                    "dimension": dimension,
                    "group": group,
                    "viewers": viewers,
                    "ratings": figures.get("ratings"),
                    "rmse": figures.get("rmse"),
                    "ndcg": ndcg,
                    "gap": None if ndcg is None or overall is None else ndcg - overall,
                    "small": viewers < settings.FAIRNESS_MIN_GROUP_VIEWERS,
                }
            )
    return rows


class ConsoleReleaseAdmin(ReleaseAdmin):
    change_form_template = "console/release.html"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        release = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if release is not None:
            runs = list(release.analysis_runs.order_by("-at"))
            checks = [(run, selectors.check_rows(run)) for run in runs]
            context.update(
                checks=checks,
                follow_unjudged=sum(
                    1 for _, rows in checks for row in rows if row.metric == BEHAVIOURAL_METRIC and row.passed is None
                ),
                follow_required=bool(release.thresholds.get("follow_required_on_last_step")),
                charts=selectors.release_charts(release),
                decisions=selectors.release_decisions(release),
                live=selectors.live_state(release_id=release.pk),
            )
        return super().change_view(request, object_id, form_url, context)


_replace(Viewer, ConsoleViewerAdmin)
_replace(Movie, ConsoleMovieAdmin)
_replace(Recommendation, ConsoleRecommendationAdmin)
# The one registration of ModelVersion: the registry and releases define its parts.
admin.site.register(ModelVersion, ConsoleModelVersionAdmin)
_replace(Release, ConsoleReleaseAdmin)
