"""The shared cast of test fixtures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings

from recommender.models import Movie, Viewer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``mysql`` exercise MariaDB itself; the SQLite pass leaves them to the MariaDB
    pass of ``make test`` rather than reporting them as skipped."""
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
        return
    deselected = [item for item in items if item.get_closest_marker("mysql")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("mysql")]


@pytest.fixture
def viewer(db) -> Viewer:
    return Viewer.objects.create(id=17, age=29, gender="F", occupation="college/grad student")


@pytest.fixture
def movie(db) -> Movie:
    return Movie.objects.create(
        slug="the+shawshank+redemption+1994", title="The Shawshank Redemption", year=1994, genres=["Drama"]
    )


@pytest.fixture
def moment() -> datetime:
    return datetime(2023, 10, 1, 12, 0, tzinfo=UTC)
