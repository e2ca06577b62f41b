"""Writes to the recommender's data: importing MovieLens datasets."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.db import transaction

from recommender.models import Movie, Rating, Viewer
from recsite.db import bulk_upsert

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
# MovieLens-1M's occupation codes, which are also the platform's occupation names.
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
# MovieLens-100K's occupations mapped onto the platform's names.
ML100K_OCCUPATIONS = {
    "administrator": "clerical/admin", "artist": "artist", "doctor": "doctor/health care",
    "educator": "academic/educator", "engineer": "technician/engineer", "entertainment": "artist",
    "executive": "executive/managerial", "healthcare": "doctor/health care", "homemaker": "homemaker",
    "lawyer": "lawyer", "librarian": "academic/educator", "marketing": "sales/marketing",
    "none": "unemployed", "other": "other", "programmer": "programmer", "retired": "retired",
    "salesman": "sales/marketing", "scientist": "scientist", "student": "college/grad student",
    "technician": "technician/engineer", "writer": "writer",
}  # fmt: skip
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
_RATINGS_BATCH = 5000


class MovieLensFormatError(Exception):
    """A MovieLens file that can't be read, naming the file and line."""

    def __init__(self, path: Path, line_number: int | None, message: str) -> None:
        where = f"{path}:{line_number}" if line_number else str(path)
        super().__init__(f"{where}: {message}")


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


@dataclass(frozen=True)
class _Layout:
    name: str
    ratings: str
    movies: str
    users: str
    separator: str


_LAYOUTS = (
    _Layout("ml-100k", "u.data", "u.item", "u.user", "|"),
    _Layout("ml-1m", "ratings.dat", "movies.dat", "users.dat", "::"),
)


def movielens_detect(path: Path) -> _Layout:
    if not path.is_dir():
        raise MovieLensFormatError(path, None, "not a directory")
    for layout in _LAYOUTS:
        if (path / layout.movies).is_file() and (path / layout.users).is_file():
            return layout
    raise MovieLensFormatError(
        path,
        None,
        "not a MovieLens directory: expected u.item and u.user (ml-100k) or movies.dat and users.dat (ml-1m)",
    )


def movielens_import(*, path: Path, progress: Callable[[int], None] | None = None) -> MovieLensImport:
    """Import a MovieLens directory (ml-100k or ml-1m layout); idempotent.

    Movies keep their MovieLens id as ``source_id`` and get the platform's slug; viewers keep
    their MovieLens id. Ratings are optional (the simulator writes only movies and viewers).
    ``progress`` is called with the number of rating lines read since the last call.
    """
    layout = movielens_detect(path)
    result = MovieLensImport(layout=layout.name)
    with transaction.atomic():
        movie_ids = _import_movies(path / layout.movies, layout)
        result.movies = len(set(movie_ids.values()))
        result.viewers = _import_viewers(path / layout.users, layout)
    ratings_path = path / layout.ratings
    if ratings_path.is_file():
        for batch, read in _rating_batches(ratings_path, layout, movie_ids):
            before = Rating.objects.count()
            with transaction.atomic():
                Viewer.objects.bulk_create(
                    [Viewer(id=viewer_id) for viewer_id in {r.viewer_id for r in batch}], ignore_conflicts=True
                )
                Rating.objects.bulk_create(batch, ignore_conflicts=True, batch_size=2000)
            result.ratings += read
            result.ratings_new += Rating.objects.count() - before
            if progress:
                progress(read)
    return result


def _lines(path: Path, separator: str, fields: int) -> Iterator[tuple[int, list[str]]]:
    # MovieLens files are Latin-1 (accented titles); any byte decodes, so bad data shows as
    # a field count or value error with its line number instead of a decode crash.
    with path.open(encoding="latin-1") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split(separator)
            if len(parts) < fields:
                raise MovieLensFormatError(
                    path, number, f"expected {fields} fields separated by {separator!r}, got {len(parts)}"
                )
            yield number, parts


def _int(path: Path, number: int, value: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise MovieLensFormatError(path, number, f"{what} {value!r} is not a number") from None


def _import_movies(path: Path, layout: _Layout) -> dict[int, int]:
    """Create or update the movies; returns MovieLens id -> our movie id."""
    fields = 24 if layout.name == "ml-100k" else 3
    runtimes = _read_runtimes(path.parent / "runtimes.tsv")
    movies: dict[str, Movie] = {}
    slug_of_source: dict[int, str] = {}
    for number, parts in _lines(path, layout.separator, fields):
        source_id = _int(path, number, parts[0], "movie id")
        title, year = _split_title(parts[1])
        if layout.name == "ml-100k":
            flags = parts[5:24]
            if any(flag not in ("0", "1") for flag in flags):
                raise MovieLensFormatError(path, number, "genre flags must be 0 or 1")
            genres = [
                genre for genre, flag in zip(ML100K_GENRES, flags, strict=True) if flag == "1" and genre != "unknown"
            ]
        else:
            genres = [genre for genre in parts[2].split("|") if genre and genre != "(no genres listed)"]
        slug = Movie.slug_for(title, year)
        # MovieLens lists a few titles twice under two ids; both ids map to one movie.
        movies.setdefault(
            slug,
            Movie(
                slug=slug,
                title=title[:300],
                year=year,
                genres=genres,
                source_id=source_id,
                runtime_minutes=runtimes.get(slug),
            ),
        )
        slug_of_source[source_id] = slug
    bulk_upsert(
        Movie,
        list(movies.values()),
        unique_fields=["slug"],
        update_fields=["title", "year", "genres", "source_id", "runtime_minutes"],
    )
    ids = dict(Movie.objects.filter(slug__in=movies.keys()).values_list("slug", "id"))
    return {source_id: ids[slug] for source_id, slug in slug_of_source.items()}


def _read_runtimes(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    runtimes = {}
    for number, parts in _lines(path, "\t", 2):
        runtimes[parts[0]] = _int(path, number, parts[1], "runtime")
    return runtimes


def _split_title(raw: str) -> tuple[str, int | None]:
    match = _TITLE_YEAR.match(raw.strip())
    if match:
        return match["title"], int(match["year"])
    return raw.strip(), None


def _import_viewers(path: Path, layout: _Layout) -> int:
    viewers = []
    for number, parts in _lines(path, layout.separator, 5 if layout.name == "ml-100k" else 4):
        viewer_id = _int(path, number, parts[0], "user id")
        if layout.name == "ml-100k":
            age = _int(path, number, parts[1], "age")
            gender, occupation_raw = parts[2].strip(), parts[3].strip()
            occupation = ML100K_OCCUPATIONS.get(occupation_raw, occupation_raw)
        else:
            gender, age = parts[1].strip(), _int(path, number, parts[2], "age")
            code = _int(path, number, parts[3], "occupation")
            if not 0 <= code < len(ML1M_OCCUPATIONS):
                raise MovieLensFormatError(path, number, f"occupation code {code} is not 0-20")
            occupation = ML1M_OCCUPATIONS[code]
        if gender not in ("M", "F"):
            raise MovieLensFormatError(path, number, f"gender {gender!r} is not M or F")
        if viewer_id <= 0:
            raise MovieLensFormatError(path, number, f"user id {viewer_id} is not positive")
        viewers.append(Viewer(id=viewer_id, age=age, gender=gender, occupation=occupation[:64]))
    bulk_upsert(Viewer, viewers, unique_fields=["id"], update_fields=["age", "gender", "occupation"])
    return len(viewers)


def _rating_batches(path: Path, layout: _Layout, movie_ids: dict[int, int]) -> Iterator[tuple[list[Rating], int]]:
    separator = "\t" if layout.name == "ml-100k" else "::"
    batch: list[Rating] = []
    read = 0
    for number, parts in _lines(path, separator, 4):
        viewer_id = _int(path, number, parts[0], "user id")
        movie_source_id = _int(path, number, parts[1], "movie id")
        score = _int(path, number, parts[2], "rating")
        stamp = _int(path, number, parts[3], "timestamp")
        if movie_source_id not in movie_ids:
            raise MovieLensFormatError(path, number, f"movie id {movie_source_id} is not in the movie file")
        if not 1 <= score <= 5:
            raise MovieLensFormatError(path, number, f"rating {score} is not 1-5")
        batch.append(
            Rating(
                viewer_id=viewer_id,
                movie_id=movie_ids[movie_source_id],
                score=score,
                rated_at=datetime.fromtimestamp(stamp, tz=UTC),
                source=Rating.Source.MOVIELENS,
            )
        )
        read += 1
        if len(batch) >= _RATINGS_BATCH:
            yield batch, read
            batch, read = [], 0
    if batch:
        yield batch, read
