"""The shared cast of test fixtures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from recommender.models import Movie, Viewer


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
