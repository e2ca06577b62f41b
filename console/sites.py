"""The admin site as recsite's operations console."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path


class ConsoleSite(admin.AdminSite):
    site_header = "recsite operations"
    site_title = "recsite"
    index_title = "Overview"
    # recsite has no public pages: a "View site" link led to a 404.
    site_url = None
    index_template = "console/overview.html"
    # At 1366 px the admin's navigation sidebar took 300 px from every page's tables; the
    # breadcrumbs and the overview's list of models lead everywhere it did.
    enable_nav_sidebar = False

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from console.views import overview_context

        return super().index(request, {**overview_context(request), **(extra_context or {})})

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from console import views

        return [
            path("live.json", self.admin_view(views.live), name="console_live"),
            path("compare/", self.admin_view(views.versions_compare), name="console_compare"),
            path("export/provenance.csv", self.admin_view(views.provenance_csv), name="console_provenance_csv"),
            *super().get_urls(),
        ]
