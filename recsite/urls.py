from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from serving.api import RecommendView, SchemaView, healthz, readyz

urlpatterns = [
    # <str:...> so a malformed id reaches the view and gets a 400 that says why, not a 404.
    path("recommend/<str:user_id>", RecommendView.as_view(), name="recommend"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/schema", SchemaView.as_view(), name="openapi-schema"),
    path("admin/", admin.site.urls),
    # The site's root is the operations console (the API is /recommend/<id>, described at /api/schema).
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("", include("django_prometheus.urls")),
]
