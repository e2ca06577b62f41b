from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from catalog.models import Movie, Viewer, Watch
from provenance import selectors
from provenance.models import Recommendation

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


NOON = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _answer(n, viewer, items, at, *, explored="", status=200, pool="stable"):
    Recommendation.objects.create(
        request_id=f"r{n}", viewer_id=viewer, pool=pool, strategy="personalized", items=items,
        explored=explored, status=status, latency_ms=1.0, served_at=at, host="t",
    )  # fmt: skip


@pytest.fixture
def served(db):
    """Viewer 1 is served a, b at noon and starts b 30 minutes later: followed within the hour.
    Viewer 2 is served a at noon and starts it two hours later: not within the hour.
    Viewer 3 is served a, c and had started c before the answer: not followed.
    Viewer 4 is served an unknown id and a; viewer 1 watching a says nothing about viewer 4."""
    one, two, three = (Viewer.objects.create(id=i) for i in (1, 2, 3))
    a, b, c = (Movie.objects.create(slug=f"{name}+2000", title=name, year=2000) for name in "abc")
    _answer(1, 1, "a+2000,b+2000", NOON, explored="b+2000")
    _answer(2, 2, "a+2000", NOON + timedelta(seconds=1))
    _answer(3, 3, "a+2000,c+2000", NOON + timedelta(seconds=2))
    _answer(4, 4, "zz+1999,a+2000", NOON + timedelta(seconds=3))
    _answer(5, 1, "c+2000", NOON, status=503)  # a failed answer is not served
    _answer(6, 1, "c+2000", NOON, pool="canary")
    watches = [
        (one, b, NOON + timedelta(minutes=30)),
        (two, a, NOON + timedelta(hours=2)),
        (three, c, NOON - timedelta(minutes=5)),
        (one, a, NOON + timedelta(minutes=1)),
    ]
    for viewer, movie, at in watches:
        Watch.objects.create(viewer=viewer, movie=movie, first_seen_at=at, last_seen_at=at, minutes_watched=5)
    return a, b, c


def test_served_answers_are_the_successful_ones_as_movie_columns(served):
    a, b, c = served

    answers = selectors.served_answers(start=NOON, end=NOON + timedelta(hours=1), pool="stable")

    assert answers.viewers.tolist() == [1, 2, 3, 4]
    assert answers.items.tolist() == [[a.pk, b.pk], [a.pk, -1], [a.pk, c.pk], [-1, a.pk]]
    assert answers.explored.tolist() == [[False, True], [False, False], [False, False], [False, False]]
    assert (answers.served_at - answers.served_at[0]).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("limit", [20_000, 0], ids=["by viewer", "one pass"])
def test_an_answer_is_followed_by_a_watch_of_its_movies_started_within_the_window(served, monkeypatch, limit):
    monkeypatch.setattr(selectors, "_BY_VIEWER_LIMIT", limit)
    answers = selectors.served_answers(start=NOON, end=NOON + timedelta(hours=1), pool="stable")

    assert selectors.answers_followed(answers, within=timedelta(hours=1)).tolist() == [True, False, False, False]
    assert selectors.answers_followed(answers, within=timedelta(hours=3)).tolist() == [True, True, False, False]


def test_no_answers_none_followed(db):
    answers = selectors.served_answers(start=NOON, end=NOON + timedelta(hours=1))

    assert len(answers) == 0
    assert selectors.answers_followed(answers, within=timedelta(hours=1)).shape == (0,)
    assert np.asarray(answers.items).shape == (0, 0)


@pytest.mark.parametrize("pairs_per_step", [2_000_000, 5, 1], ids=["one step", "steps of 5 pairs", "a watch a step"])
def test_following_on_random_answers_and_watches_is_what_the_definition_says(db, pairs_per_step):
    rng = np.random.default_rng(8)
    movies = [Movie.objects.create(slug=f"m{n}+2000", title=f"M{n}", year=2000) for n in range(12)]
    viewers = [Viewer.objects.create(id=n + 1) for n in range(15)]
    for n in range(120):
        listed = rng.choice(len(movies), rng.integers(1, 5), replace=False)
        at = NOON + timedelta(minutes=int(rng.integers(0, 240)))
        _answer(n, int(rng.integers(1, 16)), ",".join(movies[m].slug for m in listed), at)
    started = {}
    for viewer in viewers:
        for movie in rng.choice(len(movies), rng.integers(0, 6), replace=False):
            at = NOON + timedelta(minutes=int(rng.integers(-30, 300)))
            Watch.objects.create(
                viewer=viewer, movie=movies[movie], first_seen_at=at, last_seen_at=at, minutes_watched=5
            )
            started[(viewer.id, movies[movie].pk)] = at.timestamp()
    answers = selectors.served_answers(start=NOON, end=NOON + timedelta(hours=4))
    within = timedelta(hours=1)

    followed = selectors.answers_followed(answers, within=within, pairs_per_step=pairs_per_step)

    expected = [
        any(
            served <= started.get((int(viewer), int(movie)), -1) < served + within.total_seconds()
            for movie in row
            if movie >= 0
        )
        for viewer, served, row in zip(answers.viewers, answers.served_at, answers.items, strict=True)
    ]
    assert followed.tolist() == expected
    assert 0 < sum(expected) < len(expected)
