"""Data snapshots: taking one (written, hashed, versioned with DVC), checking its quality, reading it back."""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from catalog.models import Movie, Rating, Viewer, Watch
from recommender.dvc import dvc_track
from recommender.models import DataSnapshot

logger = logging.getLogger(__name__)

SNAPSHOT_FILES = ("ratings.csv", "interactions.csv", "viewers.csv", "movies.csv")
RATING_COLUMNS = ["viewer_id", "movie", "score", "rated_at"]
INTERACTION_COLUMNS = ["viewer_id", "movie", "minutes_watched", "max_minute", "score", "last_at"]
VIEWER_COLUMNS = ["viewer_id", "age", "gender", "occupation"]
MOVIE_COLUMNS = ["movie", "title", "year", "genres", "runtime_minutes"]


class SnapshotError(Exception):
    """A snapshot whose files are missing or do not match their recorded hash."""


@dataclass
class SnapshotData:
    """A snapshot read back from its files: what training needs, in plain Python."""

    ratings: list[tuple[int, str, int, int]]  # viewer, movie, score, epoch seconds
    interactions: list[tuple[int, str, int, int, int | None]]  # viewer, movie, minutes, max minute, score
    viewers: dict[int, tuple[int | None, str, str]]  # viewer -> age, gender, occupation
    movies: dict[str, tuple[str, int | None, list[str], int | None]] = field(default_factory=dict)


# --- Taking a snapshot ---------------------------------------------------------------------


def snapshot_create(*, track: bool = True) -> DataSnapshot:
    """Export the current training data, check its quality, version it with DVC.

    1. Write the four CSV files, sorted, into a staging directory and hash them.
    2. If a snapshot with that hash exists, it is this snapshot: return it.
    3. Otherwise move the files under ``snapshots/<hash>/``, run the quality check, record the
       snapshot (failed ones too, with their reasons), and ``dvc add`` + ``dvc push`` it.
    """
    root = Path(settings.DATA_DIR) / "snapshots"
    staging = root / f".staging-{timezone.now():%Y%m%d%H%M%S%f}"
    staging.mkdir(parents=True)
    try:
        figures = _write_files(staging)
        content_hash = _hash_files(staging)
        existing = DataSnapshot.objects.filter(content_hash=content_hash).first()
        if existing is not None:
            logger.info("data unchanged: reusing %s", existing)
            return existing
        final = root / content_hash[:16]
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

    quality, reasons = snapshot_check_quality(directory=final)
    snapshot = DataSnapshot(
        created_at=timezone.now(),
        status=DataSnapshot.Status.FAILED if reasons else DataSnapshot.Status.OK,
        failure_reasons=reasons,
        quality=quality,
        path=str(final.relative_to(settings.DATA_DIR)),
        content_hash=content_hash,
        **figures,
    )
    if track:
        record = dvc_track(path=final, repo=Path(settings.DATA_DIR))
        snapshot.dvc_md5, snapshot.dvc_file, snapshot.dvc_remote = record.md5, record.dvc_file, record.remote
    try:
        snapshot.save()
    except IntegrityError:
        # Another process took the same snapshot a moment ago.
        return DataSnapshot.objects.get(content_hash=content_hash)
    logger.info("snapshot %s: %s", snapshot, snapshot.status)
    return snapshot


def _write_files(directory: Path) -> dict[str, object]:
    slugs = dict(Movie.objects.values_list("id", "slug"))
    current: dict[tuple[int, int], tuple[int, datetime]] = {}
    for viewer_id, movie_id, score, rated_at in (
        Rating.objects.order_by("viewer_id", "movie_id", "rated_at", "id")
        .values_list("viewer_id", "movie_id", "score", "rated_at")
        .iterator(chunk_size=20_000)
    ):
        current[(viewer_id, movie_id)] = (score, rated_at)  # the latest rating wins
    ratings = sorted(
        (viewer_id, slugs[movie_id], score, int(rated_at.timestamp()))
        for (viewer_id, movie_id), (score, rated_at) in current.items()
    )
    _write_csv(directory / "ratings.csv", RATING_COLUMNS, ratings)

    # (minutes watched, furthest minute, current score or "" when unrated, latest event)
    interactions: dict[tuple[int, int], tuple[int, int, int | str, datetime]] = {}
    for viewer_id, movie_id, minutes, max_minute, last_seen in Watch.objects.values_list(
        "viewer_id", "movie_id", "minutes_watched", "max_minute", "last_seen_at"
    ).iterator(chunk_size=20_000):
        interactions[(viewer_id, movie_id)] = (minutes, max_minute, "", last_seen)
    for key, (score, rated_at) in current.items():
        minutes, max_minute, _, last = interactions.get(key, (0, 0, "", rated_at))
        interactions[key] = (minutes, max_minute, score, max(last, rated_at))
    interaction_rows = sorted(
        (viewer_id, slugs[movie_id], minutes, max_minute, score, int(last.timestamp()))
        for (viewer_id, movie_id), (minutes, max_minute, score, last) in interactions.items()
    )
    _write_csv(directory / "interactions.csv", INTERACTION_COLUMNS, interaction_rows)

    viewer_ids = {row[0] for row in interaction_rows}
    viewers = sorted(
        (viewer.id, "" if viewer.age is None else viewer.age, viewer.gender, viewer.occupation)
        for viewer in Viewer.objects.filter(id__in=viewer_ids).iterator(chunk_size=20_000)
    )
    _write_csv(directory / "viewers.csv", VIEWER_COLUMNS, viewers)
    movie_slugs = {row[1] for row in interaction_rows}
    movies = sorted(
        (m.slug, m.title, "" if m.year is None else m.year, "|".join(m.genres), m.runtime_minutes or "")
        for m in Movie.objects.filter(slug__in=movie_slugs).iterator(chunk_size=20_000)
    )
    _write_csv(directory / "movies.csv", MOVIE_COLUMNS, movies)

    times = [row[5] for row in interaction_rows]
    return {
        "rating_rows": len(ratings),
        "interaction_rows": len(interaction_rows),
        "viewer_count": len(viewer_ids),
        "movie_count": len(movie_slugs),
        "window_start": datetime.fromtimestamp(min(times), tz=UTC) if times else None,
        "window_end": datetime.fromtimestamp(max(times), tz=UTC) if times else None,
    }


def _write_csv(path: Path, columns: list[str], rows: Iterable[Iterable[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def _hash_files(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in SNAPSHOT_FILES:
        path = directory / name
        if not path.is_file():
            raise SnapshotError(f"snapshot file {path} is missing")
        digest.update(name.encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


# --- Checking one --------------------------------------------------------------------------


def snapshot_check_quality(*, directory: Path) -> tuple[dict[str, object], list[str]]:
    """The data-quality gate before training: figures, and the reasons it fails (if any)."""
    reasons: list[str] = []
    quality: dict[str, object] = {}
    try:
        data = _read(directory)
    except (SnapshotError, ValueError) as error:
        return {"schema": "invalid"}, [f"schema: {error}"]
    quality["schema"] = "ok"

    scores = [score for _, _, score, _ in data.ratings]
    out_of_range = sum(1 for score in scores if not 1 <= score <= 5)
    pairs = [(viewer, movie) for viewer, movie, _, _ in data.ratings]
    duplicates = len(pairs) - len(set(pairs))
    quality.update(
        ratings=len(scores),
        interactions=len(data.interactions),
        out_of_range=out_of_range,
        duplicate_pairs=duplicates,
        mean_score=round(sum(scores) / len(scores), 4) if scores else None,
    )
    if out_of_range:
        reasons.append(f"{out_of_range} ratings outside 1-5")
    if duplicates:
        reasons.append(f"{duplicates} duplicate (viewer, movie) ratings")
    if len(scores) < settings.SNAPSHOT_MIN_RATINGS:
        reasons.append(f"{len(scores)} ratings, fewer than the minimum of {settings.SNAPSHOT_MIN_RATINGS}")

    viewers = {viewer for viewer, *_ in data.interactions}
    previous = DataSnapshot.objects.filter(status=DataSnapshot.Status.OK).order_by("-created_at").first()
    if previous is not None and previous.directory.is_dir():
        known = {int(row["viewer_id"]) for row in _rows(previous.directory / "viewers.csv")}
        new_share = len(viewers - known) / len(viewers) if viewers else 0.0
        quality.update(previous_snapshot=previous.content_hash[:16], new_viewer_share=round(new_share, 4))
        if new_share > settings.SNAPSHOT_MAX_NEW_VIEWER_SHARE:
            reasons.append(
                f"{new_share:.0%} of viewers are new since the previous snapshot "
                f"(more than {settings.SNAPSHOT_MAX_NEW_VIEWER_SHARE:.0%}): a remapped id or a broken feed?"
            )
    return quality, reasons


# --- Reading one back ----------------------------------------------------------------------


def snapshot_load(snapshot: DataSnapshot) -> SnapshotData:
    """Read a snapshot's files, after checking they still hash to what was recorded."""
    directory = snapshot.directory
    actual = _hash_files(directory)
    if actual != snapshot.content_hash:
        raise SnapshotError(f"snapshot files in {directory} changed since they were recorded (hash {actual[:16]})")
    return _read(directory)


def _rows(path: Path) -> Iterable[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def _read(directory: Path) -> SnapshotData:
    for name, columns in zip(
        SNAPSHOT_FILES, (RATING_COLUMNS, INTERACTION_COLUMNS, VIEWER_COLUMNS, MOVIE_COLUMNS), strict=True
    ):
        path = directory / name
        if not path.is_file():
            raise SnapshotError(f"snapshot file {path} is missing")
        with path.open(encoding="utf-8") as handle:
            header = handle.readline().strip().split(",")
        if header != columns:
            raise SnapshotError(f"{path}: columns {header} are not {columns}")
    ratings = [
        (int(r["viewer_id"]), r["movie"], int(r["score"]), int(r["rated_at"])) for r in _rows(directory / "ratings.csv")
    ]
    interactions = [
        (
            int(r["viewer_id"]),
            r["movie"],
            int(r["minutes_watched"]),
            int(r["max_minute"]),
            int(r["score"]) if r["score"] else None,
        )
        for r in _rows(directory / "interactions.csv")
    ]
    viewers = {
        int(r["viewer_id"]): (int(r["age"]) if r["age"] else None, r["gender"], r["occupation"])
        for r in _rows(directory / "viewers.csv")
    }
    movies = {
        r["movie"]: (
            r["title"],
            int(r["year"]) if r["year"] else None,
            [genre for genre in r["genres"].split("|") if genre],
            int(r["runtime_minutes"]) if r["runtime_minutes"] else None,
        )
        for r in _rows(directory / "movies.csv")
    }
    return SnapshotData(ratings=ratings, interactions=interactions, viewers=viewers, movies=movies)
