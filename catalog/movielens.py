"""Reading GroupLens MovieLens directories (ml-100k and ml-1m layouts), without the database.

Readers yield plain rows and raise ``MovieLensFormatError`` naming the file and line of anything
malformed; ``catalog.services.movielens_import`` stores them, ``benchmarks/training.py``
trains on them directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from catalog.identifiers import slug_for

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
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


class MovieLensFormatError(Exception):
    """A MovieLens file that can't be read, naming the file and line."""

    def __init__(self, path: Path, line_number: int | None, message: str) -> None:
        where = f"{path}:{line_number}" if line_number else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Layout:
    name: str
    ratings: str
    movies: str
    users: str
    separator: str
    ratings_separator: str


LAYOUTS = (
    Layout("ml-100k", "u.data", "u.item", "u.user", "|", "\t"),
    Layout("ml-1m", "ratings.dat", "movies.dat", "users.dat", "::", "::"),
)


@dataclass(frozen=True)
class MovieRow:
    source_id: int
    slug: str
    title: str
    year: int | None
    genres: list[str]


@dataclass(frozen=True)
class ViewerRow:
    id: int
    age: int
    gender: str
    occupation: str


@dataclass(frozen=True)
class RatingRow:
    line: int
    viewer_id: int
    movie_source_id: int
    score: int
    timestamp: int


def detect(path: Path) -> Layout:
    if not path.is_dir():
        raise MovieLensFormatError(path, None, "not a directory")
    for layout in LAYOUTS:
        if (path / layout.movies).is_file() and (path / layout.users).is_file():
            return layout
    raise MovieLensFormatError(
        path,
        None,
        "not a MovieLens directory: expected u.item and u.user (ml-100k) or movies.dat and users.dat (ml-1m)",
    )


def _lines(path: Path, separator: str, fields: int) -> Iterator[tuple[int, list[str]]]:
    # MovieLens files are Latin-1 (accented titles); any byte decodes, so bad data shows as
    # a field count or value error with its line number instead of a decode crash.
    with path.open(encoding="latin-1") as handle:
        yield from _fields(path, enumerate(handle, start=1), separator, fields)


def _fields(
    path: Path, lines: Iterator[tuple[int, str]], separator: str, fields: int
) -> Iterator[tuple[int, list[str]]]:
    for number, line in lines:
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


def _split_title(raw: str) -> tuple[str, int | None]:
    match = _TITLE_YEAR.match(raw.strip())
    if match:
        return match["title"], int(match["year"])
    return raw.strip(), None


def read_movies(directory: Path, layout: Layout) -> Iterator[MovieRow]:
    path = directory / layout.movies
    for number, parts in _lines(path, layout.separator, 24 if layout.name == "ml-100k" else 3):
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
        yield MovieRow(source_id, slug_for(title, year), title, year, genres)


def read_viewers(directory: Path, layout: Layout) -> Iterator[ViewerRow]:
    path = directory / layout.users
    for number, parts in _lines(path, layout.separator, 5 if layout.name == "ml-100k" else 4):
        viewer_id = _int(path, number, parts[0], "user id")
        if layout.name == "ml-100k":
            age = _int(path, number, parts[1], "age")
            # Kept as the dataset names them (21): folding them into MovieLens-1M's list merged
            # groups (librarians with educators, "none" with the unemployed) that a per-group
            # fairness report must tell apart.
            gender, occupation = parts[2].strip(), parts[3].strip()
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
        yield ViewerRow(viewer_id, age, gender, occupation[:64])


def read_ratings(directory: Path, layout: Layout) -> Iterator[RatingRow]:
    """The ratings file's rows; an empty iterator when the directory has none (the simulator's)."""
    path = directory / layout.ratings
    if not path.is_file():
        return
    with path.open(encoding="latin-1") as handle:
        yield from _rating_rows(path, enumerate(handle, start=1), layout.ratings_separator)


def _rating_rows(path: Path, lines: Iterator[tuple[int, str]], separator: str) -> Iterator[RatingRow]:
    for number, parts in _fields(path, lines, separator, 4):
        score = _int(path, number, parts[2], "rating")
        if not 1 <= score <= 5:
            raise MovieLensFormatError(path, number, f"rating {score} is not 1-5")
        yield RatingRow(
            number,
            _int(path, number, parts[0], "user id"),
            _int(path, number, parts[1], "movie id"),
            score,
            _int(path, number, parts[3], "timestamp"),
        )


@dataclass(frozen=True)
class RatingColumns:
    """A run of consecutive rating lines as columns (int64), for imports of millions of lines."""

    lines: np.ndarray  # each row's line number in the file
    viewer_ids: np.ndarray
    movie_source_ids: np.ndarray
    scores: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.viewer_ids)


def read_rating_columns(directory: Path, layout: Layout, *, lines: int = 20_000) -> Iterator[RatingColumns]:
    """The ratings file in runs of ``lines`` lines, as columns; what ``read_ratings`` reads.

    A run of well-formed lines is converted in one step: splitting and ``int`` over a run cost a
    tenth of a row object per line, which was most of an import's time. A run that does not
    convert cleanly (a blank line, an extra field, a bad value) is read again by
    ``read_ratings``'s rules, which name the first bad line or keep what they accept."""
    path = directory / layout.ratings
    if not path.is_file():
        return
    separator = layout.ratings_separator
    with path.open(encoding="latin-1") as handle:
        first = 1
        while run := list(islice(handle, lines)):
            columns = _run_as_columns(run, separator, first)
            if columns is None or not ((columns[3] >= 1) & (columns[3] <= 5)).all():
                columns = _run_by_line(path, run, first, separator)
            yield RatingColumns(*columns)
            first += len(run)


def _run_as_columns(run: list[str], separator: str, first: int) -> tuple[np.ndarray, ...] | None:
    fields = "".join(run).replace(separator, " ").split()
    if len(fields) != 4 * len(run) or any(line.count(separator) != 3 for line in run):
        return None
    try:
        values = np.array(list(map(int, fields)), dtype=np.int64).reshape(-1, 4)
    except ValueError:
        return None
    return np.arange(first, first + len(run)), values[:, 0], values[:, 1], values[:, 2], values[:, 3]


def _run_by_line(path: Path, run: list[str], first: int, separator: str) -> tuple[np.ndarray, ...]:
    rows = [
        (row.line, row.viewer_id, row.movie_source_id, row.score, row.timestamp)
        for row in _rating_rows(path, enumerate(run, start=first), separator)
    ]
    values = np.array(rows, dtype=np.int64).reshape(-1, 5)
    return values[:, 0], values[:, 1], values[:, 2], values[:, 3], values[:, 4]


def read_runtimes(directory: Path) -> dict[str, int]:
    """Optional ``runtimes.tsv`` (slug, minutes) the simulator writes beside its metadata."""
    path = directory / "runtimes.tsv"
    if not path.is_file():
        return {}
    return {parts[0]: _int(path, number, parts[1], "runtime") for number, parts in _lines(path, "\t", 2)}
