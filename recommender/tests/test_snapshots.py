import csv
from functools import partial
from pathlib import Path

import pytest
from django.conf import settings

from recommender.models import DataSnapshot
from recommender.snapshots import (
    SnapshotError,
    files,
    snapshot_check_quality,
    snapshot_create,
    snapshot_load,
    snapshot_ratings,
)
from stream.services import stream_ingest_batch

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


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


def test_a_snapshot_joins_each_viewers_ratings_and_watches_by_movie(db):
    stream_ingest_batch(
        lines=[
            "2023-10-01T12:00:00,7,GET /rate/the+matrix+1999=5",
            "2023-10-02T12:00:00,7,GET /data/m/alien+1979/3.mpg",
            "2023-10-02T12:01:00,7,GET /data/m/alien+1979/4.mpg",
            "2023-10-03T12:00:00,7,GET /data/m/the+matrix+1999/0.mpg",
            "2023-10-01T08:00:00,3,GET /data/m/the+matrix+1999/9.mpg",
            "2023-10-01T09:00:00,3,GET /rate/the+matrix+1999=4",
            "2023-10-01T10:00:00,3,GET /rate/the+matrix+1999=3",
        ]
    )

    snapshot = snapshot_create(track=False)

    assert (snapshot.directory / "interactions.csv").read_text().splitlines() == [
        "viewer_id,movie,minutes_watched,max_minute,score,last_at",
        "3,the+matrix+1999,1,9,3,1696154400",  # the later of rating (10:00) and watch (08:00)
        "7,alien+1979,2,4,,1696248060",  # watched, never rated
        "7,the+matrix+1999,1,0,5,1696334400",
    ]
    assert (snapshot.directory / "ratings.csv").read_text().splitlines() == [
        "viewer_id,movie,score,rated_at",
        "3,the+matrix+1999,3,1696154400",
        "7,the+matrix+1999,5,1696161600",
    ]
    assert (snapshot.rating_rows, snapshot.interaction_rows, snapshot.viewer_count, snapshot.movie_count) == (
        2,
        3,
        2,
        2,
    )
    assert (int(snapshot.window_start.timestamp()), int(snapshot.window_end.timestamp())) == (1696154400, 1696334400)
    data = snapshot_load(snapshot)
    assert data.interactions.catalogue == ["alien+1979", "the+matrix+1999"]
    assert data.minutes.tolist() == [1, 2, 1]
    assert [None if score != score else score for score in data.interactions.scores.tolist()] == [3.0, None, 5.0]


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


def test_quality_check_finds_a_duplicate_across_two_runs_and_names_a_ragged_line(db, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "column_runs", partial(files.column_runs, run_bytes=10))
    ratings = [[1, "a", 3, 0], [1, "b", 3, 0], [1, "b", 4, 0], [2, "a", 5, 0]]
    _write(tmp_path / "ratings.csv", ["viewer_id", "movie", "score", "rated_at"], ratings)
    _write(
        tmp_path / "interactions.csv",
        ["viewer_id", "movie", "minutes_watched", "max_minute", "score", "last_at"],
        [[1, "a", 0, 0, 3, 0], [1, "b", 0, 0, 4, 0], [2, "a", 0, 0, 5, 0]],
    )
    _write(tmp_path / "viewers.csv", ["viewer_id", "age", "gender", "occupation"], [[1, "", "", ""], [2, "", "", ""]])
    _write(tmp_path / "movies.csv", ["movie", "title", "year", "genres", "runtime_minutes"], [["a", "A", "", "", ""]])

    quality, _ = snapshot_check_quality(directory=tmp_path)
    assert (quality["ratings"], quality["duplicate_pairs"], quality["mean_score"]) == (4, 1, 3.75)

    with (tmp_path / "ratings.csv").open("a") as handle:
        handle.write("3,a,4\n")
    quality, reasons = snapshot_check_quality(directory=tmp_path)
    assert reasons == [f"schema: {tmp_path / 'ratings.csv'}, line 6: 3 fields, expected 4"]


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
