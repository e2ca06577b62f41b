import csv
from pathlib import Path

import pytest
from django.conf import settings

from recommender.models import DataSnapshot
from recommender.snapshots import (
    SnapshotError,
    snapshot_check_quality,
    snapshot_create,
    snapshot_load,
    snapshot_ratings,
)
from stream.services import stream_ingest_batch


def test_snapshot_writes_files_and_tracks_them_with_dvc(watched_world):
    snapshot = snapshot_create()

    assert snapshot.status == DataSnapshot.Status.OK
    assert snapshot.rating_rows > 50
    assert snapshot.viewer_count <= 100
    assert sorted(path.name for path in snapshot.directory.iterdir()) == [
        "interactions.csv",
        "movies.csv",
        "ratings.csv",
        "viewers.csv",
    ]
    dvc_file = settings.DATA_DIR / snapshot.dvc_file
    assert dvc_file.is_file()
    assert snapshot.dvc_md5.endswith(".dir")
    assert snapshot.dvc_md5 in dvc_file.read_text()
    # DVC pushed the directory's content to the remote, addressed by its md5.
    assert any(path.name == snapshot.dvc_md5[2:] for path in Path(settings.DVC_REMOTE).rglob("*"))
    assert snapshot.window_start is not None
    assert snapshot.window_end is not None
    assert snapshot.window_start < snapshot.window_end


def test_a_second_snapshot_of_unchanged_data_is_the_same_snapshot(watched_world):
    first = snapshot_create()

    second = snapshot_create()

    assert second.pk == first.pk
    assert DataSnapshot.objects.count() == 1


def test_new_data_makes_a_new_snapshot(watched_world):
    first = snapshot_create()
    viewer = watched_world.viewers[0].id
    stream_ingest_batch(lines=[f"2024-01-01T00:00:00,{viewer},GET /rate/{watched_world.movies[1].slug}=1"])

    second = snapshot_create()

    assert second.content_hash != first.content_hash


def test_the_latest_rating_is_the_one_in_the_snapshot(db):
    stream_ingest_batch(
        lines=[
            "2023-10-01T12:00:00,7,GET /rate/the+matrix+1999=5",
            "2023-10-03T12:00:00,7,GET /rate/the+matrix+1999=2",
        ]
    )

    snapshot = snapshot_create(track=False)

    assert list(snapshot_ratings(snapshot)) == [(7, "the+matrix+1999", 2, 1696334400)]
    data = snapshot_load(snapshot)
    assert data.interactions.scores.tolist() == [2.0]


def test_too_few_ratings_fail_the_quality_check_and_are_recorded(db, settings):
    settings.SNAPSHOT_MIN_RATINGS = 10
    stream_ingest_batch(lines=["2023-10-01T12:00:00,7,GET /rate/the+matrix+1999=5"])

    snapshot = snapshot_create(track=False)

    assert snapshot.status == DataSnapshot.Status.FAILED
    assert snapshot.failure_reasons == ["1 ratings, fewer than the minimum of 10"]


def _write(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def test_quality_check_finds_out_of_range_and_duplicate_ratings(db, tmp_path, settings):
    settings.SNAPSHOT_MIN_RATINGS = 1
    _write(tmp_path / "ratings.csv", ["viewer_id", "movie", "score", "rated_at"], [[1, "a", 9, 0], [1, "a", 3, 0]])
    _write(
        tmp_path / "interactions.csv",
        ["viewer_id", "movie", "minutes_watched", "max_minute", "score", "last_at"],
        [[1, "a", 0, 0, 3, 0]],
    )
    _write(tmp_path / "viewers.csv", ["viewer_id", "age", "gender", "occupation"], [[1, "", "", ""]])
    _write(tmp_path / "movies.csv", ["movie", "title", "year", "genres", "runtime_minutes"], [["a", "A", "", "", ""]])

    quality, reasons = snapshot_check_quality(directory=tmp_path)

    assert reasons == ["1 ratings outside 1-5", "1 duplicate (viewer, movie) ratings"]
    assert quality["duplicate_pairs"] == 1


def test_quality_check_rejects_a_wrong_schema(db, tmp_path):
    for name in ("ratings.csv", "interactions.csv", "viewers.csv", "movies.csv"):
        (tmp_path / name).write_text("something,else\n")

    quality, reasons = snapshot_check_quality(directory=tmp_path)

    assert quality == {"schema": "invalid"}
    assert reasons[0].startswith("schema: ")
    assert "columns ['something', 'else']" in reasons[0]


def test_a_flood_of_unknown_viewers_fails_the_check(watched_world, settings):
    snapshot_create(track=False)
    lines = [f"2024-01-01T00:00:00,{900000 + n},GET /rate/{watched_world.movies[0].slug}=4" for n in range(400)]
    stream_ingest_batch(lines=lines)

    snapshot = snapshot_create(track=False)

    assert snapshot.status == DataSnapshot.Status.FAILED
    assert "of viewers are new since the previous snapshot" in snapshot.failure_reasons[0]


def test_loading_refuses_files_changed_after_the_snapshot(watched_world):
    snapshot = snapshot_create(track=False)
    ratings = snapshot.directory / "ratings.csv"
    ratings.write_text(ratings.read_text().replace(",5,", ",1,", 1))

    with pytest.raises(SnapshotError, match="changed since they were recorded"):
        snapshot_load(snapshot)
