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
