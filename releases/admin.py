from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from core.admin_kit import ReadOnlyAdmin, ReadOnlyInline, admin_link
from recommender.admin import ModelVersionAdmin
from recommender.models import ModelVersion
from recommender.selectors import model_version_stable
from releases.forms import ReleaseStartForm
from releases.models import AnalysisRun, Release, ReleaseEvent
from releases.services import RELEASE_DECISIONS, ReleaseError, release_start


class EventInline(ReadOnlyInline):
    model = ReleaseEvent
    fields = ["at", "from_state", "to_state", "weight", "actor", "reason"]


class AnalysisInline(ReadOnlyInline):
    model = AnalysisRun
    fields = ["at", "weight", "source", "verdict", "action", "reasons", "canary", "stable"]


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "candidate_link",
        "stable_link",
        "state",
        "weight",
        "steps",
        "failed_checks",
        "decided_by",
    ]
    list_filter = ["state"]
    list_select_related = ["candidate", "stable"]
    inlines = [EventInline, AnalysisInline]
    # One way to say where a release is ("step 2 of 3, at 20%"); step_index is counted from 0 and
    # is not shown as such.
    fields = [
        "candidate", "stable", "state", "step", "weight", "interval_seconds", "min_step_seconds", "thresholds",
        "failed_checks", "inconclusive_checks", "decided_by", "reason",
        "created_at", "started_at", "step_started_at", "finished_at",
    ]  # fmt: skip
    change_form_template = "admin/releases/release/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/decide/<str:action>/",
                self.admin_site.admin_view(self.act),
                name="releases_release_act",
            ),
            path("start/<int:version_pk>/", self.admin_site.admin_view(self.start), name="releases_release_start"),
            *super().get_urls(),
        ]

    def act(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        """Promote, abort, pause or resume a release, with permission: GET shows what the
        decision will do and asks why; POST with a reason decides (a POST without one shows the
        page again, nothing decided). Back to ``next`` when it is one of this site's pages."""
        if action not in RELEASE_DECISIONS or not request.user.has_perm("releases.change_release"):
            raise PermissionDenied
        release = get_object_or_404(Release.objects.select_related("candidate", "stable"), pk=pk)
        back = request.POST.get("next", request.GET.get("next", ""))
        if not url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            back = reverse("admin:releases_release_change", args=[pk])
        reason = request.POST.get("reason", "").strip()[:2000]
        if request.method != "POST" or not reason:
            if action not in release.decisions:
                self.message_user(request, f"{release}: {action} is not possible now", level=messages.ERROR)
                return HttpResponseRedirect(back)
            error = "Say why: the reason is recorded with the decision." if request.method == "POST" else ""
            context = {
                **self.admin_site.each_context(request),
                "release": release, "action": action, "effect": release.decision_effect(action),
                "next": back, "error": error, "reason": reason, "opts": self.opts,
            }  # fmt: skip
            return TemplateResponse(
                request, "admin/releases/release/decide.html", context, status=400 if error else 200
            )
        try:
            RELEASE_DECISIONS[action](release=release, actor=request.user.get_username(), reason=reason)
        except ReleaseError as error:
            self.message_user(request, str(error), level=messages.ERROR)
        else:
            release.refresh_from_db()
            self.message_user(request, f"{release}: {action} done")
        return HttpResponseRedirect(back)

    def start(self, request: HttpRequest, version_pk: int) -> HttpResponse:
        """Start a release of one candidate with its steps and thresholds chosen (GET: the form
        with the defaults; POST: start it, then its page)."""
        if not request.user.has_perm("releases.add_release"):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=version_pk)
        form = ReleaseStartForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                release = release_start(
                    candidate=version,
                    steps=form.cleaned_data["steps"],
                    interval_seconds=form.cleaned_data["interval_seconds"],
                    min_step_seconds=form.cleaned_data["min_step_seconds"],
                    thresholds=form.thresholds(),
                    actor=request.user.get_username(),
                )
            except ReleaseError as error:
                form.add_error(None, str(error))
            else:
                self.message_user(request, f"{release} started")
                return HttpResponseRedirect(reverse("admin:releases_release_change", args=[release.pk]))
        context = {
            **self.admin_site.each_context(request),
            "form": form, "version": version, "opts": self.opts,
            "stable": model_version_stable(),
        }  # fmt: skip
        return TemplateResponse(
            request, "admin/releases/release/start.html", context, status=400 if form.errors else 200
        )

    @admin.display(description="step")
    def step(self, release: Release) -> str:
        weights = ", ".join(f"{weight}%" for weight in release.steps)
        return f"{release.step_index + 1} of {len(release.steps)} ({weights})"

    @admin.display(ordering="candidate__version", description="candidate")
    def candidate_link(self, release: Release) -> str:
        return admin_link(ModelVersion, release.candidate_id, f"v{release.candidate.version}")

    @admin.display(ordering="stable__version", description="stable")
    def stable_link(self, release: Release) -> str:
        if release.stable is None:
            return "-"
        return admin_link(ModelVersion, release.stable_id, f"v{release.stable.version}")


@admin.register(AnalysisRun)
class AnalysisRunAdmin(ReadOnlyAdmin):
    list_display = ["at", "release", "weight", "source", "verdict", "action"]
    list_filter = ["verdict", "action", "source"]
    list_select_related = ["release__candidate"]


class ReleasableModelVersionAdmin(ModelVersionAdmin):
    """The registry's version list with the release action: releases sit above the registry, so
    the registry's admin cannot know them. Registered by the console, once."""

    actions = ["start_release"]

    @admin.action(description="Start a canary release of the selected candidate…", permissions=["release"])
    def start_release(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "choose exactly one candidate version", level=messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:releases_release_start", args=[queryset.get().pk]))

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases.add_release")
