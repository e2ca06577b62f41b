"""The console's own pages: thin, each a selector's figures in a template."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.utils import timezone

from console import selectors
from fairness.selectors import served_report_latest
from provenance.models import Recommendation
from recommender.models import ModelVersion

OVERVIEW_HOURS = 3


# What each block of the overview shows, by the permission that lets one see it: staff with no
# permission at all see the page and nothing of recsite's state.
OVERVIEW_PERMISSIONS = {
    "versions": "recommender.view_modelversion",
    "release": "releases.view_release",
    "fairness": "fairness.view_fairnessreport",
    "served_fairness": "fairness.view_servedfairnessreport",
    "traffic": "provenance.view_recommendation",
    "ingest": "stream.view_ingestrun",
    "rejections": "stream.view_rejectedline",
    "queue": "django_q.view_schedule",
    "artifact_faults": "serving.view_artifactfault",
}


def overview_context(request: HttpRequest) -> dict[str, Any]:
    now = timezone.now()
    shown = {block for block, permission in OVERVIEW_PERMISSIONS.items() if request.user.has_perm(permission)}
    serving = selectors.serving_now(now) if shown & {"versions", "release"} else None
    context: dict[str, Any] = {"shown": shown, "serving": serving, "traffic_hours": OVERVIEW_HOURS}
    if {"versions", "release"} <= shown:
        context["live"] = selectors.live_state(now=now)
    if serving is not None and "fairness" in shown:
        context["fairness"] = selectors.fairness_of_serving(serving)
    if "served_fairness" in shown:
        context["served_fairness"] = served_report_latest()
    if "traffic" in shown:
        traffic = selectors.pool_traffic_recent(hours=OVERVIEW_HOURS, now=now)
        context["traffic_charts"] = selectors.traffic_charts(traffic)
    if "ingest" in shown:
        context["ingest_chart"] = selectors.ingest_chart()
    if "rejections" in shown:
        context["rejections_chart"] = selectors.rejections_chart()
    if "queue" in shown:
        context["queue"] = selectors.queue_health(now)
    if "artifact_faults" in shown:
        context["artifact_faults"] = selectors.artifact_faults_recent(now=now)
    return context


def live(request: HttpRequest) -> JsonResponse:
    """What the overview and the release page poll (console/live.js): they reload when
    ``changed`` moves. ``?release=<id>`` follows that release rather than the current one."""
    if not (request.user.has_perm("recommender.view_modelversion") and request.user.has_perm("releases.view_release")):
        raise PermissionDenied
    raw = request.GET.get("release", "")
    if raw and not raw.isdigit():
        return JsonResponse({"error": f"release must be a release's id, not {raw[:40]!r}"}, status=400)
    return JsonResponse(selectors.live_state(release_id=int(raw) if raw else None))


class CompareForm(forms.Form):
    versions = forms.CharField(
        required=False, help_text="version numbers separated by commas, e.g. 3,4,7 (empty: the last ten)"
    )

    def clean_versions(self) -> list[int]:
        text = self.cleaned_data["versions"].strip()
        if not text:
            return []
        numbers = []
        for part in text.split(","):
            part = part.strip().lstrip("v")
            if not part.isdigit():
                raise forms.ValidationError(f"{part!r} is not a version number")
            numbers.append(int(part))
        if len(numbers) > 50:
            raise forms.ValidationError("compare at most 50 versions at once")
        return numbers


def versions_compare(request: HttpRequest) -> TemplateResponse:
    if not request.user.has_perm("recommender.view_modelversion"):
        raise PermissionDenied
    form = CompareForm(request.GET or None)
    chosen: list[int] = form.cleaned_data["versions"] if form.is_valid() else []
    queryset = ModelVersion.objects.select_related("snapshot")
    if chosen:
        versions = list(queryset.filter(version__in=chosen).order_by("version"))
        missing = sorted(set(chosen) - {version.version for version in versions})
    else:
        versions = list(queryset.order_by("-version")[:10])[::-1]
        missing = []
    usage = selectors.version_usage(versions)
    rows = [
        (
            version,
            usage.get(version.pk, (0, 0)),
            version.metrics.get("popularity", {}).get("ndcg@10"),
            version.metrics.get("coverage@20"),
        )
        for version in versions
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Compare model versions",
        "subtitle": None,
        "form": form,
        "rows": rows,
        "missing": missing,
        "charts": selectors.comparison_charts(versions),
        "opts": ModelVersion._meta,
    }
    return TemplateResponse(request, "console/compare.html", context)


class ExportForm(forms.Form):
    viewer = forms.IntegerField(required=False, min_value=1)
    version = forms.IntegerField(required=False, min_value=1, help_text="model version number")
    pool = forms.ChoiceField(required=False, choices=[("", "any"), *Recommendation.Pool.choices])
    since = forms.DateTimeField(required=False, help_text="UTC, e.g. 2026-11-30 14:00")
    until = forms.DateTimeField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("'since' must be before 'until'")
        return data


def provenance_csv(request: HttpRequest) -> HttpResponseBase:
    """The provenance join of the answers a filter selects, as CSV, streamed in chunks."""
    if not request.user.has_perm("provenance.view_recommendation"):
        raise PermissionDenied
    form = ExportForm(request.GET)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(str(m) for m in messages)}" for field, messages in form.errors.items())
        return HttpResponseBadRequest(f"bad export filter: {errors}\n", content_type="text/plain")
    data = form.cleaned_data
    queryset = Recommendation.objects.order_by("served_at", "id")
    if data["viewer"]:
        queryset = queryset.filter(viewer_id=data["viewer"])
    if data["version"]:
        queryset = queryset.filter(model_version__version=data["version"])
    if data["pool"]:
        queryset = queryset.filter(pool=data["pool"])
    if data["since"]:
        queryset = queryset.filter(served_at__gte=data["since"])
    if data["until"]:
        queryset = queryset.filter(served_at__lt=data["until"])

    def lines() -> Iterator[str]:
        buffer = _Line()
        writer = csv.writer(buffer)
        writer.writerow(selectors.PROVENANCE_COLUMNS)
        yield buffer.take()
        for row in selectors.provenance_export_rows(queryset):
            writer.writerow(row)
            yield buffer.take()

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="provenance-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response


class _Line:
    """A file for csv.writer that hands back each row it was given."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def take(self) -> str:
        text, self.text = self.text, ""
        return text
