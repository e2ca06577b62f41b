"""Database helpers shared by the apps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, models


def bulk_upsert(
    model: type[models.Model],
    rows: Sequence[models.Model],
    *,
    unique_fields: list[str],
    update_fields: list[str],
    batch_size: int = 2000,
) -> None:
    """Insert ``rows``, overwriting ``update_fields`` of rows that already exist, in one statement
    per batch on every backend."""
    # MySQL's ON DUPLICATE KEY UPDATE takes no conflict target; SQLite's ON CONFLICT needs one.
    target = unique_fields if connection.features.supports_update_conflicts_with_target else None
    model._default_manager.bulk_create(
        rows, update_conflicts=True, unique_fields=target, update_fields=update_fields, batch_size=batch_size
    )


def bulk_insert_new(model: type[models.Model], fields: list[str], rows: Sequence[Sequence[Any]]) -> int:
    """Insert ``rows`` (values of ``fields``, in order), skipping those a unique constraint
    already holds, in one statement per batch; returns how many were inserted.

    The database says how many rows it inserted (the cursor's row count), so the caller never
    counts the table: a count per batch made importing quadratic in the table's size."""
    if not rows:
        return 0
    prepared = [field for name in fields if isinstance(field := model._meta.get_field(name), models.Field)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in prepared)
    placeholders = ", ".join(["%s"] * len(fields))
    table = quote(model._meta.db_table)
    if connection.vendor == "mysql":
        sql = f"INSERT IGNORE INTO {table} ({columns}) VALUES ({placeholders})"
    elif connection.vendor == "sqlite":
        sql = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({placeholders})"
    else:
        sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
    converted = [(i, adapt) for i, field in enumerate(prepared) if (adapt := _adapter(field)) is not _as_is]
    params: Sequence[Sequence[Any]] = rows
    if converted:
        params = [list(row) for row in rows]
        for i, adapt in converted:
            for row in params:
                row[i] = adapt(row[i])  # type: ignore[index]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
        inserted: int = cursor.rowcount
    return max(inserted, 0)


def _adapter(field: models.Field[Any, Any]) -> Callable[[Any], Any]:
    """How a Python value of ``field`` goes to the database. Integers and text go as they are;
    anything else through the field's own preparation. (Asking the field for every value of a
    million rows cost more than inserting them.)"""
    if isinstance(field, models.IntegerField | models.CharField | models.ForeignKey):
        return _as_is
    if isinstance(field, models.DateTimeField) and settings.USE_TZ and connection.vendor in ("sqlite", "mysql"):
        # What both backends' adapt_datetimefield_value do (naive in the connection's time
        # zone, as text), without reading the lazy settings object again for every row.
        zone = connection.timezone

        def adapt(value: datetime | None) -> str | None:
            if value is None:
                return None
            return str(value if value.tzinfo is None else value.astimezone(zone).replace(tzinfo=None))

        return adapt
    return partial(field.get_db_prep_save, connection=connection)


def _as_is(value: Any) -> Any:
    return value


def connection_drop_if_broken() -> None:
    """After a database error: close a connection the server dropped, so the next attempt opens
    a new one; keep a healthy one (a lock timeout, a duplicate key), and with it any transaction
    the caller is in."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def database_answers() -> bool:
    """Whether the database takes a query now; a connection it dropped is replaced first."""
    connection_drop_if_broken()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        connection_drop_if_broken()
        return False
    return True
