"""Generated interaction data whose structure is known, for the tests and the benchmarks.

``taste_world`` draws watches from two sources: the catalogue's popularity (Zipf), which is
the same for everyone, and each viewer's hidden taste (one of ``tastes`` groups of movies).
``taste_strength`` is the share of a viewer's watches drawn from their taste: at 0 nobody has a
taste and the most-popular list is the best anyone can do in expectation; near 1 a personal
model beats it by far. The density is ``interactions / (viewers x movies)``.
"""

from __future__ import annotations

import numpy as np

from recommender.learning.splitting import Interactions


def taste_world(
    *,
    viewers: int,
    movies: int,
    interactions: int,
    tastes: int = 8,
    taste_strength: float = 0.5,
    zipf: float = 1.0,
    rated_share: float = 0.4,
    seed: int = 0,
) -> Interactions:
    """About ``interactions`` distinct (viewer, movie) pairs; viewer ids run from 1."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, movies + 1) ** zipf
    popularity = popularity[rng.permutation(movies)]  # popular movies spread over every taste
    movie_taste = rng.integers(0, tastes, movies)
    viewer_taste = rng.integers(0, tastes, viewers)
    # Activity is heavy-tailed, as on a real platform; a little more is drawn to make up for
    # the repeats that are dropped.
    activity = rng.lognormal(0.0, 0.8, viewers)
    draws = np.maximum(1, np.round(activity / activity.sum() * interactions * 1.15)).astype(np.int64)
    viewer = np.repeat(np.arange(viewers), draws)
    from_taste = rng.random(len(viewer)) < taste_strength
    movie = _draw(rng, popularity, len(viewer))
    for taste in range(tastes):
        members = np.flatnonzero(movie_taste == taste)
        chosen = from_taste & (viewer_taste[viewer] == taste)
        if len(members) and chosen.any():
            movie[chosen] = members[_draw(rng, popularity[members], int(chosen.sum()))]
    pairs = np.unique(viewer * movies + movie)
    viewer, movie = pairs // movies, pairs % movies
    liked = movie_taste[movie] == viewer_taste[viewer]
    score = np.clip(np.round(3.0 + 1.2 * liked - 0.6 * ~liked + rng.normal(0.0, 0.8, len(pairs))), 1, 5)
    score = np.where(rng.random(len(pairs)) < rated_share, score, np.nan).astype(np.float32)
    width = len(str(movies))
    return Interactions(
        viewers=(viewer + 1).astype(np.int64),
        movies=movie.astype(np.int32),
        scores=score,
        catalogue=[f"m{column:0{width}d}" for column in range(movies)],
    )


def _draw(rng: np.random.Generator, weights: np.ndarray, count: int) -> np.ndarray:
    cumulative = np.cumsum(weights)
    drawn: np.ndarray = np.searchsorted(cumulative, rng.random(count) * cumulative[-1])
    bounded: np.ndarray = np.minimum(drawn, len(weights) - 1)
    return bounded
