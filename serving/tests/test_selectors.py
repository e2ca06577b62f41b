import pytest

from catalog.models import Viewer
from serving.selectors import viewer_state
from stream.services import stream_ingest_batch

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


def test_a_cold_viewers_state_and_demographics_come_in_one_query(db, django_assert_num_queries):
    Viewer.objects.create(id=5, gender="F", age=31)

    with django_assert_num_queries(1):
        state = viewer_state(5)

    assert state.history == set()
    assert state.finished == set()
    assert state.demographics == (31, "F")


def test_a_viewer_with_a_history_is_answered_from_it_not_from_demographics(db, django_assert_num_queries):
    stream_ingest_batch(
        lines=[
            "2023-10-01T12:00:00,6,GET /rate/the+matrix+1999=5",
            *(f"2023-10-01T13:{minute:02d}:00,6,GET /data/m/alien+1979/{minute}.mpg" for minute in range(6)),
        ]
    )
    Viewer.objects.filter(id=6).update(gender="M", age=40)

    with django_assert_num_queries(1):
        state = viewer_state(6)

    assert state.history == {"the+matrix+1999", "alien+1979"}
    assert state.finished == {"the+matrix+1999"}
    assert state.demographics is None


def test_an_unknown_viewer_has_no_state(db):
    state = viewer_state(123456)

    assert (state.history, state.finished, state.demographics) == (set(), set(), None)
