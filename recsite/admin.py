"""Admin building blocks shared by the apps."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """For audit data written only by recsite itself (the stream, measurements): look, don't touch."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RangeFilter(admin.SimpleListFilter):
    """Operational buckets over one numeric field: subclasses name the ``field`` and the
    ``buckets`` as (parameter value, label, lower bound or None, upper bound or None)."""

    field: str
    buckets: list[tuple[str, str, float | None, float | None]]

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(key, label) for key, label, _, _ in self.buckets]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        for key, _, low, high in self.buckets:
            if self.value() == key:
                if low is not None:
                    queryset = queryset.filter(**{f"{self.field}__gte": low})
                if high is not None:
                    queryset = queryset.filter(**{f"{self.field}__lt": high})
        return queryset
