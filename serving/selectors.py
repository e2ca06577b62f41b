"""Reads on the request path: what a viewer has done by now."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from catalog.models import Movie, Rating, Viewer, Watch


@dataclass(frozen=True)
class ViewerState:
    history: set[str]
    finished: set[str]
    demographics: tuple[int | None, str] | None


_RATED, _WATCHED, _PROFILE = 1, 0, 2  # what a row of HISTORY_SQL is


def _history_sql() -> str:
    rating, watch, movie, viewer = (model._meta.db_table for model in (Rating, Watch, Movie, Viewer))
    return (
        f"SELECT m.slug, {_RATED}, 0, 0, m.runtime_minutes FROM {rating} r JOIN {movie} m ON m.id = r.movie_id "
        f"WHERE r.viewer_id = %s UNION ALL "
        f"SELECT m.slug, {_WATCHED}, w.max_minute, w.minutes_watched, m.runtime_minutes FROM {watch} w "
        f"JOIN {movie} m ON m.id = w.movie_id WHERE w.viewer_id = %s UNION ALL "
        # The viewer's own row (gender in the text column, age in the first number): a second
        # round trip for viewers without a history was most of a cold answer's time.
        f"SELECT v.gender, {_PROFILE}, v.age, 0, NULL FROM {viewer} v WHERE v.id = %s"
    )


def viewer_state(viewer_id: int) -> ViewerState:
    """What the viewer rated and watched by now, and who they are when that matters (no
    history: the cold-start list depends on it).

    One SQL statement over the (viewer, movie) indexes and the viewer's key; written out rather
    than built by the ORM because building querysets cost more than running them, on the
    hottest path.
    """
    history: set[str] = set()
    finished: set[str] = set()
    # Settings are lazy objects: read them once, not once per row.
    least, share, unknown_runtime = (
        settings.WATCH_MIN_MINUTES,
        settings.SERVING_FINISHED_SHARE,
        settings.SERVING_FINISHED_MINUTES,
    )
    profile: tuple[int | None, str] | None = None
    with connection.cursor() as cursor:
        cursor.execute(HISTORY_SQL, [viewer_id, viewer_id, viewer_id])
        rows = cursor.fetchall()
    # MariaDB types a UNION's number columns as DECIMAL where its branches' integers differ in
    # width or sign: the numbers are made ints here, on every backend alike.
    for slug, kind, first_number, second_number, runtime_number in rows:
        if kind == _PROFILE:
            profile = (None if first_number is None else int(first_number), slug)
            continue
        if kind == _RATED:
            history.add(slug)
            finished.add(slug)
            continue
        max_minute, minutes, runtime = int(first_number), int(second_number), int(runtime_number or 0)
        if minutes >= least:
            history.add(slug)
        if (runtime and max_minute + 1 >= share * runtime) or (not runtime and minutes >= unknown_runtime):
            finished.add(slug)
    return ViewerState(history=history, finished=finished, demographics=None if history else profile)


HISTORY_SQL = _history_sql()
