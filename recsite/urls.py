from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "recsite operations"
admin.site.site_title = "recsite"
admin.site.index_title = "Operations console"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),
]
