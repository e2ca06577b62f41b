from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Movie, Viewer
from catalog.services import movielens_import
from simulator.services import SimulatorOptions, simulator_end
from simulator.world import OCCUPATIONS, World


@pytest.fixture(scope="module")
def world():
    return World.generate(seed=5, viewers=200, movies=150)


def test_same_seed_gives_the_same_stream():
    first = list(World.generate(seed=9, viewers=20, movies=30).events(days=1))
    second = list(World.generate(seed=9, viewers=20, movies=30).events(days=1))
    other = list(World.generate(seed=10, viewers=20, movies=30).events(days=1))

    assert first == second
    assert first != other


def test_demographics_have_uneven_realistic_shares(world):
    occupations = [viewer.occupation for viewer in world.viewers]

    assert set(occupations) <= {name for name, _ in OCCUPATIONS}
    assert occupations.count("college/grad student") > occupations.count("lawyer")
    assert 0.55 < sum(viewer.gender == "M" for viewer in world.viewers) / len(world.viewers) < 0.85
    assert all(13 <= viewer.age <= 90 for viewer in world.viewers)


def test_world_metadata_imports_with_matching_slugs(db, tmp_path, world):
    world.write_metadata(tmp_path / "world")

    result = movielens_import(path=tmp_path / "world")

    assert (result.movies, result.viewers, result.ratings) == (150, 200, 0)
    assert set(Movie.objects.values_list("slug", flat=True)) == {movie.slug for movie in world.movies}
    first = world.viewers[0]
    assert Viewer.objects.get(id=first.id).occupation == first.occupation
    assert Movie.objects.get(slug=world.movies[0].slug).runtime_minutes == world.movies[0].runtime


def test_the_simulated_days_end_when_asked(tmp_path):
    out = tmp_path / "stream.log"
    call_command(
        "simulate", "--viewers", "20", "--movies", "30", "--days", "2", "--end", "2026-12-01T12:00", "--out", str(out)
    )
    stamps = [datetime.fromisoformat(line.split(",")[0]).replace(tzinfo=UTC) for line in out.read_text().splitlines()]
    assert max(stamps) <= datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert min(stamps) >= datetime(2026, 11, 29, 12, tzinfo=UTC)


def test_end_now_places_the_stream_in_the_present():
    options = SimulatorOptions(days=3, end=simulator_end("now"))
    assert options.start is not None
    assert abs((datetime.now(UTC) - timedelta(days=3) - options.start).total_seconds()) < 5


def test_a_bad_end_is_refused_with_the_accepted_forms():
    with pytest.raises(CommandError, match="'now' or an ISO date-time"):
        call_command("simulate", "--viewers", "5", "--end", "yesterday", "--out", "-")


def _watched_affinity(world: World, lines: list[bytes], *, older: bool) -> float:
    """The mean hidden affinity of the movies viewers of one age side chose to watch."""
    viewer_index = {viewer.id: i for i, viewer in enumerate(world.viewers)}
    movie_index = {movie.slug: i for i, movie in enumerate(world.movies)}
    chosen = set()
    for line in lines:
        parts = line.decode().split(",")
        if len(parts) == 3 and parts[2].startswith("GET /data/m/"):
            v = viewer_index[int(parts[1])]
            if (world.viewers[v].age >= 45) == older:
                chosen.add((v, movie_index[parts[2].split("/")[3]]))
    return sum(world.affinity[v, m] for v, m in chosen) / len(chosen)


def test_older_viewers_out_of_focus_choose_less_by_their_tastes(world):
    focused = list(world.events(days=1, sessions_per_viewer=6))
    spread = list(world.events(days=1, sessions_per_viewer=6, older_focus=0.3))

    assert list(world.events(days=1, sessions_per_viewer=6, older_focus=1.0)) == focused
    assert _watched_affinity(world, spread, older=True) < _watched_affinity(world, focused, older=True) - 0.2
    assert _watched_affinity(world, spread, older=False) == pytest.approx(
        _watched_affinity(world, focused, older=False), abs=0.1
    )


def test_an_older_focus_outside_zero_to_one_is_refused():
    with pytest.raises(CommandError, match="--older-focus must be between 0 and 1"):
        call_command("simulate", "--viewers", "5", "--older-focus", "1.5", "--out", "-")
