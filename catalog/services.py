"""Writes to the catalogue: importing MovieLens datasets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.db import transaction

from catalog import movielens
from catalog.models import Movie, Rating, Viewer
from core.db import bulk_insert_new, bulk_upsert

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
        viewers = [
            Viewer(id=v.id, age=v.age, gender=v.gender, occupation=v.occupation)
            for v in movielens.read_viewers(path, layout)
        ]
        bulk_upsert(Viewer, viewers, unique_fields=["id"], update_fields=["age", "gender", "occupation"])
        result.viewers = len(viewers)
    known = set(Viewer.objects.values_list("id", flat=True).iterator(chunk_size=50_000))
    for batch in _rating_batches(path, layout, movie_ids):
        with transaction.atomic():
            # A ratings file may name viewers its users file leaves out: they are created bare.
            unknown = {row[0] for row in batch} - known
            Viewer.objects.bulk_create([Viewer(id=viewer_id) for viewer_id in unknown], ignore_conflicts=True)
            known |= unknown
            result.ratings_new += bulk_insert_new(Rating, RATING_FIELDS, batch)
        result.ratings += len(batch)
        if progress:
            progress(len(batch))
    return result


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


def _rating_batches(
    directory: Path, layout: movielens.Layout, movie_ids: dict[int, int]
) -> Iterator[list[tuple[int, int, int, datetime, str]]]:
    """Rows of ``RATING_FIELDS`` in batches: plain tuples, not model instances (a model instance
    per rating cost more than the insert)."""
    batch: list[tuple[int, int, int, datetime, str]] = []
    source = Rating.Source.MOVIELENS.value
    for row in movielens.read_ratings(directory, layout):
        movie_id = movie_ids.get(row.movie_source_id)
        if movie_id is None:
            raise movielens.MovieLensFormatError(
                directory / layout.ratings, row.line, f"movie id {row.movie_source_id} is not in the movie file"
            )
        batch.append((row.viewer_id, movie_id, row.score, datetime.fromtimestamp(row.timestamp, tz=UTC), source))
        if len(batch) >= _RATINGS_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
