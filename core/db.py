"""Database helpers shared by the apps."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connection, models, transaction


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


def bulk_insert_new(
    model: type[models.Model],
    fields: list[str],
    rows: Sequence[Sequence[Any]],
    *,
    prepared: frozenset[str] = frozenset(),
) -> int:
    """Insert ``rows`` (values of ``fields``, in order), skipping those a unique constraint
    already holds, in one statement per batch; returns how many were inserted.

    The database says how many rows it inserted (the cursor's row count), so the caller never
    counts the table: a count per batch made importing quadratic in the table's size. Values of
    the fields named in ``prepared`` are already in the database's form (``db_datetimes``)."""
    if not rows:
        return 0
    fields, rows = _with_defaults(model, fields, rows)
    columns, placeholders, table = _insert_parts(model, fields)
    if connection.vendor == "mysql":
        sql = f"INSERT IGNORE INTO {table} ({columns}) VALUES ({placeholders})"
    elif connection.vendor == "sqlite":
        sql = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({placeholders})"
    else:
        sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        cursor.executemany(sql, _adapted(model, fields, rows, prepared))
        inserted: int = cursor.rowcount
    return max(inserted, 0)


def bulk_upsert_rows(
    model: type[models.Model],
    fields: list[str],
    rows: Sequence[Sequence[Any]],
    *,
    unique_field: str,
) -> None:
    """Insert ``rows`` (values of ``fields``, in order), overwriting the other fields of rows
    whose ``unique_field`` already exists: ``bulk_upsert`` for plain tuples, which cost a tenth
    of model instances at a hundred thousand rows."""
    if not rows:
        return
    updated_fields = [name for name in fields if name != unique_field]
    fields, rows = _with_defaults(model, fields, rows)
    columns, placeholders, table = _insert_parts(model, fields)
    quote = connection.ops.quote_name
    updated = [quote(str(_field(model, name).column)) for name in updated_fields]
    if connection.vendor == "mysql":
        conflict = "ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in updated)
    else:
        target = quote(str(_field(model, unique_field).column))
        conflict = f"ON CONFLICT ({target}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updated)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) {conflict}", _adapted(model, fields, rows)
        )


def db_datetimes(seconds: np.ndarray) -> list[Any]:
    """Unix times as this connection stores a ``DateTimeField``, for ``bulk_insert_new``'s
    ``prepared``: in one numpy step where the connection keeps UTC (both backends by default),
    otherwise value by value through the field's own rules."""
    if settings.USE_TZ and connection.vendor in ("sqlite", "mysql") and _is_utc(connection.timezone):
        text = np.datetime_as_string(np.asarray(seconds, dtype="datetime64[s]"), unit="s")
        return [value.replace("T", " ") for value in text.tolist()]
    adapt = _adapter(models.DateTimeField())
    return [adapt(datetime.fromtimestamp(value, tz=UTC)) for value in np.asarray(seconds).tolist()]


def _is_utc(zone: tzinfo | None) -> bool:
    return zone is not None and zone.utcoffset(None) == timedelta(0) and str(zone) in ("UTC", "Etc/UTC")


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field), f"{model.__name__}.{name} is not a concrete field"
    return field


def _with_defaults(
    model: type[models.Model], fields: list[str], rows: Sequence[Sequence[Any]]
) -> tuple[list[str], Sequence[Sequence[Any]]]:
    """``fields`` and ``rows`` completed with the value Django would give every other field on
    insert (a default, ``auto_now_add``), computed once for the batch."""
    blank = model()
    missing = [
        field
        for field in model._meta.concrete_fields
        if field.name not in fields and not (field.primary_key and isinstance(field, models.AutoField))
    ]
    if not missing:
        return fields, rows
    constants = tuple(field.pre_save(blank, add=True) for field in missing)
    return [*fields, *(field.name for field in missing)], [(*row, *constants) for row in rows]


def _insert_parts(model: type[models.Model], fields: list[str]) -> tuple[str, str, str]:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(_field(model, name).column)) for name in fields)
    return columns, ", ".join(["%s"] * len(fields)), quote(model._meta.db_table)


def _adapted(
    model: type[models.Model], fields: list[str], rows: Sequence[Sequence[Any]], prepared: frozenset[str] = frozenset()
) -> Sequence[Sequence[Any]]:
    converted = [
        (i, adapt)
        for i, name in enumerate(fields)
        if name not in prepared and (adapt := _adapter(_field(model, name))) is not _as_is
    ]
    if not converted:
        return rows
    params = [list(row) for row in rows]
    for i, adapt in converted:
        for row in params:
            row[i] = adapt(row[i])
    return params


@contextmanager
def secondary_indexes_deferred(model: type[models.Model], *, when: bool) -> Iterator[None]:
    """For a bulk load on SQLite (``when``): one transaction in which the model's non-unique
    indexes are dropped and built again once, at the end.

    Keeping an index in another order than the load's up to date touched a random page per row,
    and was most of an import's time on SQLite; building it afterwards is one sort. It is one
    transaction so that an interrupted load leaves neither rows nor a missing index. Elsewhere,
    and for small loads, nothing changes (InnoDB buffers secondary index changes itself)."""
    if not when or connection.vendor != "sqlite" or not model._meta.indexes:
        yield
        return
    editor = connection.schema_editor()
    indexes = model._meta.indexes
    with transaction.atomic():
        with connection.cursor() as cursor:
            for index in indexes:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(str(index.name))}")
        yield
        with connection.cursor() as cursor:
            for index in indexes:
                cursor.execute(str(index.create_sql(model, editor)))


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


# MariaDB's answers to two transactions that want each other's rows: one of them is rolled back
# (deadlock) or gave up waiting (lock wait timeout). Neither is about the statement's data.
_LOCK_CONFLICTS = frozenset({1205, 1213})


def is_lock_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a transaction that lost to a concurrent one over locked rows and can
    simply be run again (SQLite serialises writers, so only MariaDB raises these)."""
    cause = error.__cause__ or error
    code = cause.args[0] if cause.args else None
    return isinstance(error, DatabaseError) and code in _LOCK_CONFLICTS


class EpochSeconds(models.Func):
    """A ``DateTimeField`` as whole Unix seconds, computed by the database: reading millions of
    datetimes through Python's converters cost more than the query that found them.

    Both backends store naive UTC (``USE_TZ``), so the difference from the epoch needs no zone."""

    output_field = models.BigIntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # '%%%%s' reaches SQLite as '%s': template formatting halves it once, the cursor once more.
        # The text is cut at the seconds: strftime rounds a fraction (.999999 to the next second).
        template = "CAST(strftime('%%%%s', substr(%(expressions)s, 1, 19)) AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_mysql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', %(expressions)s)", **extra
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="FLOOR(EXTRACT(EPOCH FROM %(expressions)s))::bigint", **extra)


def integer_columns(queryset: models.QuerySet[Any, Any]) -> np.ndarray:
    """A ``values_list`` query of integer columns as one int64 array (rows x columns), fetched in
    one step without a Python object per value: the reader of the largest tables."""
    sql, params = queryset.query.sql_with_params()
    width = len(queryset.query.values_select) + len(queryset.query.annotation_select)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return np.array(rows, dtype=np.int64).reshape(-1, width)


def raw_chunks(queryset: models.QuerySet[Any, Any], size: int = 20_000) -> Iterator[list[tuple[Any, ...]]]:
    """A query's rows as the driver gives them, ``size`` at a time, without Django's converters
    per value: for millions of rows of columns the driver already returns as the types wanted."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(size):
            yield chunk
