"""core.db's bulk writers and readers, on the catalogue's tables (core has no tables of its own)."""

from datetime import UTC, datetime

import numpy as np
import pytest
from django.db import connection

from catalog.models import Movie, Rating, Viewer
from core.db import EpochSeconds, bulk_insert_new, bulk_upsert_rows, db_datetimes, integer_columns

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


def test_db_datetimes_store_what_the_field_would_store(db):
    seconds = np.array([0, 874_965_758, 956_703_932, 1_700_000_000])
    field = Rating._meta.get_field("rated_at")

    expected = [
        field.get_db_prep_save(datetime.fromtimestamp(value, tz=UTC), connection=connection)
        for value in seconds.tolist()
    ]

    assert [str(value) for value in db_datetimes(seconds)] == [str(value) for value in expected]


def test_prepared_datetimes_read_back_as_the_same_instants(db):
    Viewer.objects.create(id=1)
    movie = Movie.objects.create(slug="a+1999", title="A", year=1999)
    seconds = np.array([874_965_758, 956_703_932])

    inserted = bulk_insert_new(
        Rating,
        ["viewer", "movie", "score", "rated_at"],
        [(1, movie.id, 4, when) for when in db_datetimes(seconds)],
        prepared=frozenset({"rated_at"}),
    )

    assert inserted == 2
    stored = sorted(Rating.objects.values_list("rated_at", flat=True))
    assert [int(value.timestamp()) for value in stored] == seconds.tolist()
    assert Rating.objects.filter(rated_at__gte=datetime.fromtimestamp(956_703_932, tz=UTC)).count() == 1


def test_upserting_rows_fills_defaults_on_insert_and_keeps_them_on_update(db):
    bulk_upsert_rows(Viewer, ["id", "age", "gender"], [(1, 30, "F"), (2, 40, "M")], unique_field="id")
    created = Viewer.objects.get(id=1).created_at

    bulk_upsert_rows(Viewer, ["id", "age", "gender"], [(1, 31, "F"), (3, 20, "X")], unique_field="id")

    assert list(Viewer.objects.values_list("id", "age", "gender")) == [(1, 31, "F"), (2, 40, "M"), (3, 20, "X")]
    assert Viewer.objects.get(id=1).created_at == created
    assert Viewer.objects.get(id=3).created_at is not None


def test_epoch_seconds_are_the_whole_seconds_of_the_stored_instant(db):
    Viewer.objects.create(id=1)
    movie = Movie.objects.create(slug="a+1999", title="A", year=1999)
    moments = [datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2023, 10, 1, 12, tzinfo=UTC)]
    Rating.objects.bulk_create([Rating(viewer_id=1, movie=movie, score=3, rated_at=at) for at in moments])

    columns = integer_columns(
        Rating.objects.order_by("rated_at").annotate(at=EpochSeconds("rated_at")).values_list("score", "at")
    )

    assert columns.tolist() == [[3, int(moment.timestamp())] for moment in moments]
