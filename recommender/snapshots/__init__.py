"""Data snapshots: taking one (``writing``: written, hashed, versioned with DVC), checking its
quality (``quality``), reading it back (``reading``); ``files`` says what one is on disk."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from core.replica import replica_reads
from recommender.dvc import dvc_track
from recommender.models import DataSnapshot
from recommender.snapshots.files import SNAPSHOT_FILES, SnapshotData, SnapshotError, hash_files
from recommender.snapshots.quality import snapshot_check_quality
from recommender.snapshots.reading import snapshot_load, snapshot_ratings
from recommender.snapshots.writing import write_files

__all__ = [
    "SNAPSHOT_FILES",
    "SnapshotData",
    "SnapshotError",
    "snapshot_check_quality",
    "snapshot_create",
    "snapshot_load",
    "snapshot_ratings",
]

logger = logging.getLogger(__name__)


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
        with replica_reads() as database:
            logger.info("exporting the training data: %s", database.summary)
            figures = write_files(staging)
        content_hash = hash_files(staging)
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
