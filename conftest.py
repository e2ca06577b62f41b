"""The shared cast of test fixtures."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

import pytest
from django.conf import settings

from recommender.models import ModelVersion

if TYPE_CHECKING:
    from simulator.world import World


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test`` runs the suite in three passes. The SQLite pass runs every test but those
    marked ``mysql`` (they exercise MariaDB itself) and ``stack``; the MariaDB pass runs only the
    tests whose outcome the database engine shapes, marked ``engine`` or ``mysql``; tests marked
    ``own_database`` start services on a database of their own and run in the SQLite pass only;
    tests marked ``stack`` run against the compose stack, in its pass only. Each pass leaves the
    others' tests out rather than reporting them as skipped."""
    on_mysql = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"
    other_pass = "own_database" if on_mysql else "mysql"
    # The stack's tests run in a pass of their own (RECSITE_STACK=1, make test-stack), and only they.
    on_stack = os.environ.get("RECSITE_STACK") == "1"

    def elsewhere(item: pytest.Item) -> bool:
        if bool(item.get_closest_marker("stack")) != on_stack:
            return True
        if on_mysql and not (item.get_closest_marker("engine") or item.get_closest_marker("mysql")):
            return True  # it does not depend on the engine: the SQLite pass has run it
        return bool(item.get_closest_marker(other_pass))

    deselected = [item for item in items if elsewhere(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not elsewhere(item)]


@pytest.fixture(autouse=True)
def empty_cache():
    """The console caches figures for a minute or ten: no test sees another's."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def files(settings, tmp_path):
    """Each test gets its own data, model and DVC remote directories."""
    settings.DATA_DIR = tmp_path / "data"
    settings.MODEL_DIR = tmp_path / "models"
    settings.DVC_REMOTE = str(tmp_path / "dvc-remote")
    return tmp_path


@cache
def _small_world() -> tuple[World, list[bytes]]:
    from simulator.world import World

    world = World.generate(seed=3, viewers=100, movies=60)
    return world, list(world.events(sessions_per_viewer=10, days=5, rating_rate=0.6))


@pytest.fixture
def watched_world(db, tmp_path):
    """A small simulated world imported and its stream ingested: enough to train on."""
    from catalog.services import movielens_import
    from stream.services import stream_consume
    from stream.sources import IterableSource

    world, lines = _small_world()
    world.write_metadata(tmp_path / "world")
    movielens_import(path=tmp_path / "world")
    stream_consume(source=IterableSource(lines))
    return world


@pytest.fixture
def trained_version(watched_world) -> ModelVersion:
    from recommender.services import model_train

    return model_train(actor="test")


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended (a lock holder or a consumer that is gone)."""
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
