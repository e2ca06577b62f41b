"""Admin building blocks shared by the apps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import JSONField, Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


def readable(value: object) -> SafeString | str:
    """A stored JSON value as a person reads it: a mapping as a table of names and values, a
    list of plain values joined by commas, a list of mappings as a table with a column per key,
    numbers with thousands separators. Never the JSON text."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 0.001 or abs(value) >= 1e15):
            return f"{value:.3g}"  # four decimals would say 0 for a small share
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):
        rows = format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>", ((key, readable(item)) for key, item in value.items())
        )
        return format_html('<table class="console-kv"><tbody>{}</tbody></table>', rows)
    if isinstance(value, list):
        if all(isinstance(item, dict) for item in value):
            keys = list(dict.fromkeys(key for item in value for key in item))
            head = format_html_join("", "<th>{}</th>", ((key,) for key in keys))
            body = format_html_join(
                "",
                "<tr>{}</tr>",
                (
                    (format_html_join("", "<td>{}</td>", ((readable(item.get(key)),) for key in keys)),)
                    for item in value
                ),
            )
            return format_html(
                '<table class="console-kv"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body
            )
        return format_html_join(", ", "{}", ((readable(item),) for item in value))
    return str(value)


def counted(field: str, description: str | None = None) -> Callable[[Model], str]:
    """A list column showing a count field with thousands separators (1,376,313), sortable by
    it. Per column, not ``USE_THOUSAND_SEPARATOR``, which would print ids and years as 1,234."""

    def display(obj: Model) -> str:
        value = getattr(obj, field)
        return "-" if value is None else f"{value:,}"

    display.__name__ = field
    display.short_description = description or field.replace("_", " ")  # type: ignore[attr-defined]
    display.admin_order_field = field  # type: ignore[attr-defined]
    return display


class ReadableJSON:
    """Shows a model's JSON fields with ``readable`` instead of their JSON text: each JSON field
    in ``fields`` is replaced by a display of the same label (``<name>_readable``)."""

    SUFFIX = "_readable"
    model: type[Model]

    def _json_fields(self) -> set[str]:
        return {field.name for field in self.model._meta.get_fields() if isinstance(field, JSONField)}

    def readable_names(self, fields: Any) -> list[Any]:
        json_fields = self._json_fields()
        return [f"{field}{self.SUFFIX}" if field in json_fields else field for field in fields or []]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return self.readable_names(super().get_fields(request, obj))  # type: ignore[misc]

    def __getattr__(self, name: str) -> Any:
        if name.endswith(ReadableJSON.SUFFIX):
            field_name = name[: -len(ReadableJSON.SUFFIX)]
            if field_name in self._json_fields():
                field = self.model._meta.get_field(field_name)

                def display(obj: Model) -> object:
                    return readable(getattr(obj, field_name))

                display.short_description = getattr(field, "verbose_name", field_name)  # type: ignore[attr-defined]
                return display
        raise AttributeError(name)


class ReadOnlyAdmin(ReadableJSON, admin.ModelAdmin[Any]):
    """For audit data written only by recsite itself (the stream, measurements): look, don't touch."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(ReadableJSON, admin.TabularInline[Any, Any]):
    """Audit rows shown under their parent (status changes, release events, checks)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field for field in self.readable_names(self.fields) if isinstance(field, str)]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def admin_link(model: type[Model], pk: object, label: object) -> str:
    """A link to a row's page in the console."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, label)


class RangeFilter(admin.SimpleListFilter):
    """Operational buckets over one numeric field: subclasses name the ``field`` and the
    ``buckets`` as (parameter value, label, lower bound or None, upper bound or None)."""

    field: str
    buckets: list[tuple[str, str, float | None, float | None]]

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(key, label) for key, label, _, _ in self.buckets]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        for key, _, low, high in self.buckets:
            if self.value() == key:
                if low is not None:
                    queryset = queryset.filter(**{f"{self.field}__gte": low})
                if high is not None:
                    queryset = queryset.filter(**{f"{self.field}__lt": high})
        return queryset


class CappedCountPaginator(Paginator[Any]):
    """Counts at most ``CAP`` rows: a list page over millions of rows must not count them all
    (a full COUNT read the whole table on every page view). Past the cap the list offers the
    first ``CAP`` rows; a filter narrows it."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet):
            return queryset.values("pk")[: self.CAP].count()
        return min(len(queryset), self.CAP)


class RecentFilter(admin.SimpleListFilter):
    """Time windows finer than a day over one datetime ``field``, counted back from now."""

    title = "when"
    parameter_name = "within"
    field: str
    windows = [
        ("15m", "last 15 minutes", timedelta(minutes=15)),
        ("1h", "last hour", timedelta(hours=1)),
        ("6h", "last 6 hours", timedelta(hours=6)),
        ("24h", "last 24 hours", timedelta(hours=24)),
        ("7d", "last 7 days", timedelta(days=7)),
    ]

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(key, label) for key, label, _ in self.windows]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        for key, _, span in self.windows:
            if self.value() == key:
                return queryset.filter(**{f"{self.field}__gte": timezone.now() - span})
        return queryset
