"""The simulator's event log read by the stream's parser: the contract between the two."""

from itertools import pairwise

import numpy as np
import pytest
from django.core.management import call_command

from simulator.world import World
from stream.parsing import RateEvent, Rejection, WatchEvent, parse_line

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=5, viewers=200, movies=150)


def test_stream_without_junk_parses_completely(world):
    parsed = [parse_line(line) for line in world.events(days=2)]

    assert parsed
    assert not [item for item in parsed if isinstance(item, Rejection)]
    assert {type(item).__name__ for item in parsed} == {"WatchEvent", "RateEvent", "RecommendationEvent"}


def test_junk_rate_mixes_in_damaged_lines(world):
    parsed = [parse_line(line) for line in world.events(days=2, junk_rate=0.05)]
    rejected = [item for item in parsed if isinstance(item, Rejection)]

    assert 0.01 < len(rejected) / len(parsed) < 0.1
    assert len({item.reason for item in rejected}) >= 5


def test_stream_is_in_time_order(world):
    times = [item.at for item in map(parse_line, world.events(days=2)) if not isinstance(item, Rejection)]

    # Timestamps are written with at most microsecond precision; order holds to the second.
    assert all(b.timestamp() >= a.timestamp() - 1 for a, b in pairwise(times))


def test_ratings_reflect_hidden_tastes(world):
    slugs = {movie.slug: movie.index for movie in world.movies}
    viewers = {viewer.id: index for index, viewer in enumerate(world.viewers)}
    pairs = [
        (world.affinity[viewers[item.viewer_id], slugs[item.movie]], item.score)
        for item in map(parse_line, world.events(days=7))
        if isinstance(item, RateEvent)
    ]
    affinity, score = np.array(pairs).T

    assert len(pairs) > 200
    assert np.corrcoef(affinity, score)[0, 1] > 0.5


def test_viewers_watch_longer_what_they_like(world):
    slugs = {movie.slug: movie.index for movie in world.movies}
    viewers = {viewer.id: index for index, viewer in enumerate(world.viewers)}
    minutes: dict[tuple[int, int], int] = {}
    for item in map(parse_line, world.events(days=7)):
        if isinstance(item, WatchEvent):
            key = (viewers[item.viewer_id], slugs[item.movie])
            minutes[key] = max(minutes.get(key, 0), item.minute)
    affinity = np.array([world.affinity[key] for key in minutes])
    watched = np.array(list(minutes.values()))

    assert np.corrcoef(affinity, watched)[0, 1] > 0.3


def test_simulate_command_writes_a_log_file(tmp_path):
    out = tmp_path / "stream.log"

    call_command("simulate", seed=1, viewers=10, movies=25, days=1, out=str(out))

    lines = out.read_bytes().splitlines()
    assert lines
    assert all(not isinstance(parse_line(line), Rejection) for line in lines)
