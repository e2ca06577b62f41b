"""The data-quality check a snapshot passes before anything trains on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings

from recommender.models import DataSnapshot
from recommender.snapshots import files
from recommender.snapshots.files import SnapshotError


def snapshot_check_quality(*, directory: Path) -> tuple[dict[str, object], list[str]]:
    """The data-quality gate before training: figures, and the reasons it fails (if any).

    It reads the files row by row: the check costs no memory per rating."""
    reasons: list[str] = []
    quality: dict[str, object] = {}
    try:
        files.check_columns(directory)
        count = out_of_range = duplicates = total = 0
        previous: tuple[str, str] | None = None
        for viewer, movie, text, _ in files.column_runs(directory / "ratings.csv", 4):
            scores = files.integers(text)
            count, total = count + len(scores), total + int(scores.sum())
            out_of_range += int(((scores < 1) | (scores > 5)).sum())
            # The file is sorted: a repeated pair is adjacent (within a run or across two).
            viewers_run, movies_run = np.array(viewer), np.array(movie)
            duplicates += int(((viewers_run[1:] == viewers_run[:-1]) & (movies_run[1:] == movies_run[:-1])).sum())
            duplicates += (viewer[0], movie[0]) == previous
            previous = (viewer[-1], movie[-1])
        interaction_viewers: list[np.ndarray] = []
        interactions = 0
        for columns in files.column_runs(directory / "interactions.csv", 6):
            interaction_viewers.append(np.unique(files.integers(columns[0])))
            interactions += len(columns[0])
        viewers = np.unique(np.concatenate(interaction_viewers)) if interaction_viewers else np.zeros(0, np.int64)
    except (SnapshotError, ValueError, KeyError, TypeError) as error:
        return {"schema": "invalid"}, [f"schema: {error}"]
    quality.update(
        schema="ok",
        ratings=count,
        interactions=interactions,
        out_of_range=out_of_range,
        duplicate_pairs=duplicates,
        mean_score=round(total / count, 4) if count else None,
    )
    if out_of_range:
        reasons.append(f"{out_of_range} ratings outside 1-5")
    if duplicates:
        reasons.append(f"{duplicates} duplicate (viewer, movie) ratings")
    if count < settings.SNAPSHOT_MIN_RATINGS:
        reasons.append(f"{count} ratings, fewer than the minimum of {settings.SNAPSHOT_MIN_RATINGS}")

    previous_snapshot = DataSnapshot.objects.filter(status=DataSnapshot.Status.OK).order_by("-created_at").first()
    if previous_snapshot is not None and previous_snapshot.directory.is_dir():
        known = [
            files.integers(columns[0]) for columns in files.column_runs(previous_snapshot.directory / "viewers.csv", 4)
        ]
        new = np.setdiff1d(viewers, np.concatenate(known)) if known else viewers
        new_share = len(new) / len(viewers) if len(viewers) else 0.0
        quality.update(previous_snapshot=previous_snapshot.content_hash[:16], new_viewer_share=round(new_share, 4))
        if new_share > settings.SNAPSHOT_MAX_NEW_VIEWER_SHARE:
            reasons.append(
                f"{new_share:.0%} of viewers are new since the previous snapshot "
                f"(more than {settings.SNAPSHOT_MAX_NEW_VIEWER_SHARE:.0%}): a remapped id or a broken feed?"
            )
    return quality, reasons
