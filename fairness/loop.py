"""A closed feedback loop: the simulator's viewers watch what recsite recommends them.

Each simulated day, every viewer asks the model that serves for a list (the answer is logged as
the platform logs it and recorded as a provenance row), watches one of the listed movies with a
probability that follows their hidden taste, sometimes rates it; the stream is ingested, and
the model is retrained on it. So recsite's own answers shape its next training data, which is
how an echo chamber and a filter bubble form. Run once without and once with exploration
(``simulate_loop`` does both, each in a database of its own), the days' figures tell what the
exploration changed.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from catalog.demographics import GENDERS
from catalog.services import movielens_import
from fairness import metrics
from fairness.feedback import homogenisation
from provenance.models import Recommendation
from provenance.rollup import recommendations_insert
from recommender.models import ModelVersion
from recommender.services import model_train, model_version_set_status
from serving.services import recommendation_answer
from serving.store import ServingModel
from simulator.world import World, recommendation_line
from stream.services import stream_consume, stream_ingest_batch
from stream.sources import IterableSource

START = datetime(2024, 1, 1, tzinfo=UTC)
LIST_LENGTH = 20
RELEVANT = 20  # a viewer's relevant movies: the best this many by hidden taste, not yet watched


@dataclass(frozen=True)
class LoopSettings:
    seed: int = 7
    viewers: int = 300
    movies: int = 200
    days: int = 5
    exploration: int = 0  # slots per list


def loop_run(*, settings: LoopSettings, directory: Path) -> list[dict[str, Any]]:
    """Run the loop in this database (an empty one: the command gives each arm its own) and
    return each day's figures."""
    world = World.generate(seed=settings.seed, viewers=settings.viewers, movies=settings.movies)
    world.write_metadata(directory / "world")
    movielens_import(path=directory / "world")
    # Organic history before recsite answers anyone: the platform's popular list.
    stream_consume(source=IterableSource(world.events(sessions_per_viewer=6, days=3, start=START, rating_rate=0.6)))
    _promote(model_train(actor="loop"))
    rng = random.Random(settings.seed)
    slug_index = {movie.slug: movie.index for movie in world.movies}
    seen: dict[int, set[int]] = defaultdict(set)
    for viewer_index, movie_index in _watched_so_far(world):
        seen[viewer_index].add(movie_index)
    days = []
    for day in range(settings.days):
        version = ModelVersion.objects.get(status=ModelVersion.Status.STABLE)
        model = ServingModel.load(version)
        at = START + timedelta(days=3 + day)
        lines: list[bytes] = []
        rows: list[Recommendation] = []
        lists: dict[int, list[int]] = {}
        explored: list[int] = []
        watched: dict[int, set[int]] = defaultdict(set)
        followed = 0
        for index, viewer in enumerate(world.viewers):
            moment = at + timedelta(seconds=rng.uniform(0, 80_000))
            request_id = f"loop-{settings.exploration}-{day}-{viewer.id}"
            answer = recommendation_answer(
                model=model,
                viewer_id=viewer.id,
                count=LIST_LENGTH,
                request_id=request_id,
                exploration_slots=settings.exploration,
            )
            listed = [slug_index[slug] for slug in answer.items if slug in slug_index]
            lists[index] = listed
            explored += [slug_index[slug] for slug in answer.explored if slug in slug_index]
            lines.append(recommendation_line(moment, viewer.id, 200, answer.items, 20))
            rows.append(
                Recommendation(
                    request_id=request_id, viewer_id=viewer.id, model_version=version, pool="stable",
                    strategy=answer.strategy, degraded=answer.degraded, items=",".join(answer.items),
                    explored=",".join(answer.explored),
                    latency_ms=1.0, served_at=moment, host="simulate_loop",
                )
            )  # fmt: skip
            choice, from_list = world.choose(index, listed, rng)
            if choice is None:
                continue
            watched[index].add(choice)
            followed += from_list
            lines += [line for _, line in world.watch_lines(index, choice, moment, rng)]
        recommendations_insert(rows)
        stream_ingest_batch(lines=lines, source="simulate_loop")
        days.append(
            {**_figures(world, lists, watched, seen, explored), "followed_share": round(followed / len(lists), 4)}
        )
        for index, movies in watched.items():
            seen[index] |= movies
        _promote(model_train(actor="loop"))
    return days


def _promote(version: ModelVersion) -> None:
    """The loop serves each day's model: a candidate that passed the gate becomes stable."""
    if version.status == ModelVersion.Status.CANDIDATE:
        model_version_set_status(
            version=version, status=ModelVersion.Status.STABLE, reason="simulated day", actor="loop"
        )


def _watched_so_far(world: World) -> list[tuple[int, int]]:
    from catalog.models import Watch

    index_of_viewer = {viewer.id: i for i, viewer in enumerate(world.viewers)}
    index_of_movie = {movie.slug: movie.index for movie in world.movies}
    return [
        (index_of_viewer[viewer], index_of_movie[slug])
        for viewer, slug in Watch.objects.values_list("viewer_id", "movie__slug")
        if viewer in index_of_viewer and slug in index_of_movie
    ]


def _figures(
    world: World,
    lists: dict[int, list[int]],
    watched: dict[int, set[int]],
    seen: dict[int, set[int]],
    explored: list[int],
) -> dict[str, Any]:
    exposure = Counter(movie for listed in lists.values() for movie in listed)
    genres_of = {index: movie.genres for index, movie in enumerate(world.movies)}
    gender_of = {viewer: GENDERS.get(world.viewers[viewer].gender, "unknown") for viewer in watched}
    ndcgs = [_ndcg(world, viewer, listed[:10], seen[viewer]) for viewer, listed in lists.items()]
    return {
        "gini": round(metrics.gini([exposure.get(m, 0) for m in range(len(world.movies))]), 4),
        "coverage": round(len(exposure) / len(world.movies), 4),
        "explored": len(explored),
        "genre_entropy": metrics.genre_entropy_by_group(watched, gender_of, genres_of),
        "homogenisation": homogenisation(list(watched.values()), np.random.default_rng(0)),
        "ndcg@10": round(float(np.mean(ndcgs)), 4) if ndcgs else None,
    }


def _ndcg(world: World, viewer: int, listed: list[int], seen: set[int]) -> float:
    """NDCG@10 of a list against the viewer's hidden taste: relevant are the best ``RELEVANT``
    movies by affinity that the viewer has not watched yet."""
    order = [int(m) for m in np.argsort(-world.affinity[viewer]) if int(m) not in seen][:RELEVANT]
    relevant = set(order)
    gains = [1.0 / math.log2(rank + 2) for rank, movie in enumerate(listed) if movie in relevant]
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(10, len(relevant))))
    return sum(gains) / ideal if ideal else 0.0
