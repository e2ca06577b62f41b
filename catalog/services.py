"""Writes to the catalogue: importing MovieLens datasets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
from django.db import transaction

from catalog import movielens
from catalog.models import Movie, Rating, Viewer
from core.db import bulk_insert_new, bulk_upsert, bulk_upsert_rows, db_datetimes, secondary_indexes_deferred

_RATINGS_BATCH = 20_000
RATING_FIELDS = ["viewer", "movie", "score", "rated_at", "source"]


@dataclass
class MovieLensImport:
    layout: str
    movies: int = 0
    viewers: int = 0
    ratings: int = 0
    ratings_new: int = 0

    def summary(self) -> str:
        return (
            f"imported MovieLens ({self.layout}): {self.movies:,} movies, {self.viewers:,} viewers, "
            f"{self.ratings:,} ratings read, {self.ratings_new:,} new"
        )


def movielens_import(*, path: Path, progress: Callable[[int], None] | None = None) -> MovieLensImport:
    """Import a MovieLens directory (ml-100k or ml-1m layout); idempotent.

    Movies keep their MovieLens id as ``source_id`` and get the platform's slug; viewers keep
    their MovieLens id. Ratings are optional (the simulator writes only movies and viewers).
    ``progress`` is called with the number of rating lines read since the last call.
    """
    layout = movielens.detect(path)
    result = MovieLensImport(layout=layout.name)
    with transaction.atomic():
        movie_ids = _import_movies(path, layout)
        result.movies = len(set(movie_ids.values()))
        viewers = [(v.id, v.age, v.gender, v.occupation) for v in movielens.read_viewers(path, layout)]
        bulk_upsert_rows(Viewer, ["id", "age", "gender", "occupation"], viewers, unique_field="id")
        result.viewers = len(viewers)
    known = set(Viewer.objects.values_list("id", flat=True).iterator(chunk_size=50_000))
    lookup = np.full(max(movie_ids, default=0) + 1, -1, dtype=np.int64)
    lookup[list(movie_ids)] = list(movie_ids.values())
    ratings_file = path / layout.ratings
    with secondary_indexes_deferred(Rating, when=_is_bulk_load(ratings_file)):
        for columns in movielens.read_rating_columns(path, layout, lines=_RATINGS_BATCH):
            movies = _our_movie_ids(ratings_file, columns, lookup)
            with transaction.atomic():
                # A ratings file may name viewers its users file leaves out: they are created bare.
                unknown = set(np.unique(columns.viewer_ids).tolist()) - known
                Viewer.objects.bulk_create([Viewer(id=viewer_id) for viewer_id in unknown], ignore_conflicts=True)
                known |= unknown
                rows = zip(
                    columns.viewer_ids.tolist(),
                    movies.tolist(),
                    columns.scores.tolist(),
                    db_datetimes(columns.timestamps),
                    repeat(Rating.Source.MOVIELENS.value),
                    strict=False,
                )
                result.ratings_new += bulk_insert_new(
                    Rating, RATING_FIELDS, list(rows), prepared=frozenset({"rated_at"})
                )
            result.ratings += len(columns)
            if progress:
                progress(len(columns))
    return result


def _is_bulk_load(ratings_file: Path) -> bool:
    """Whether a ratings file adds at least a quarter of what the table holds (MovieLens lines
    take about 25 bytes): then rebuilding its other indexes once is cheaper than keeping them."""
    if not ratings_file.is_file():
        return False
    last_id = Rating.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return ratings_file.stat().st_size / 25 >= max(last_id / 4, 50_000)


def _our_movie_ids(ratings_file: Path, columns: movielens.RatingColumns, lookup: np.ndarray) -> np.ndarray:
    source = columns.movie_source_ids
    inside = (source >= 0) & (source < len(lookup))
    movies = np.where(inside, lookup[np.where(inside, source, 0)], -1)
    if (missing := np.flatnonzero(movies < 0)).size:
        first = missing[0]
        raise movielens.MovieLensFormatError(
            ratings_file, int(columns.lines[first]), f"movie id {source[first]} is not in the movie file"
        )
    return movies


def _import_movies(directory: Path, layout: movielens.Layout) -> dict[int, int]:
    """Create or update the movies; returns MovieLens id -> our movie id."""
    runtimes = movielens.read_runtimes(directory)
    movies: dict[str, Movie] = {}
    slug_of_source: dict[int, str] = {}
    for row in movielens.read_movies(directory, layout):
        # MovieLens lists a few titles twice under two ids; both ids map to one movie.
        movies.setdefault(
            row.slug,
            Movie(
                slug=row.slug,
                title=row.title[:300],
                year=row.year,
                genres=row.genres,
                source_id=row.source_id,
                runtime_minutes=runtimes.get(row.slug),
            ),
        )
        slug_of_source[row.source_id] = row.slug
    bulk_upsert(
        Movie,
        list(movies.values()),
        unique_fields=["slug"],
        update_fields=["title", "year", "genres", "source_id", "runtime_minutes"],
    )
    ids = dict(Movie.objects.filter(slug__in=movies.keys()).values_list("slug", "id"))
    return {source_id: ids[slug] for source_id, slug in slug_of_source.items()}
