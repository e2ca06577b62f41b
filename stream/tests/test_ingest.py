import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, OperationalError
from django.db.models import Sum

from catalog.models import Movie, Rating, Viewer, Watch
from stream import services
from stream.models import IngestRun, ObservedRecommendation, RejectedLine, RejectionOverflow
from stream.parsing import Rejection, parse_line
from stream.services import KnownIds, rejections_total, stream_consume, stream_ingest_batch
from stream.sources import FileSource, IterableSource

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


MIXED_LINES = [
    # viewer 7 watches minutes 0-2 of one movie; minute 1 arrives twice, as the platform sends it
    "2023-10-01T12:00:00,7,GET /data/m/the+matrix+1999/0.mpg",
    "2023-10-01T12:01:00,7,GET /data/m/the+matrix+1999/1.mpg",
    "2023-10-01T12:01:00,7,GET /data/m/the+matrix+1999/1.mpg",
    "2023-10-01T12:02:00.25,7,GET /data/m/the+matrix+1999/2.mpg",
    "2023-10-01T12:03:00,7,GET /rate/the+matrix+1999=5",
    "2023-10-01T12:04:00,8,GET /data/m/mr++mrs+smith+2005/40.mpg",
    "2023-10-01T12:05:00,8,GET /rate/mr++mrs+smith+2005=2",
    # a later rating of the same movie is a new event: history is kept
    "2023-10-02T09:00:00,8,GET /rate/mr++mrs+smith+2005=3",
    "2023-10-01T12:06:00.123,9,recommendation request r:8082, status 200, result: the+matrix+1999, heat+1995, 41 ms",
    "2023-10-01T12:06:30,9,recommendation request r:8082, status 0, result: java.util.concurrent.TimeoutException:"
    " Request timeout to r/10.0.0.1:8082 after 800 ms, 812 ms",
    # damaged lines
    "2023-10-01T12:07:00,7,GET /data/m/the+matrix+1999/6x1.mpg",
    "2023-10-01T12:07:00,7,GET /rate/the+matrix+1999=E",
    "2023-10-01T12:07:00,7,GET /rate/the+matrix+1999=7",
    "2023-10-01T12:07:00,GET /data/m/the+matrix+1999/3.mpg",
    "",
]


def _write(path: Path, lines: Sequence[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")
    return path


def _counts() -> dict[str, int]:
    return {
        "viewers": Viewer.objects.count(),
        "movies": Movie.objects.count(),
        "ratings": Rating.objects.count(),
        "watches": Watch.objects.count(),
        "minutes": Watch.objects.aggregate(total=Sum("minutes_watched"))["total"] or 0,
        "observed": ObservedRecommendation.objects.count(),
        "rejected": rejections_total(),
    }


@pytest.mark.django_db
def test_mixed_file_gives_exact_counts_and_a_second_ingestion_changes_nothing(tmp_path):
    junk = [b"\xff\xfe\x00\x81binary", b"2023-10-01T12:00:00,5,GET /data/m/" + b"x" * 100_000 + b"/1.mpg"]
    log = _write(tmp_path / "mixed.log", [*MIXED_LINES, *junk])

    first = stream_consume(source=FileSource(str(log)), batch_size=4)
    after_first = _counts()
    second = stream_consume(source=FileSource(str(log)), batch_size=7)

    assert (first.watches, first.ratings, first.recommendations, first.rejected) == (5, 3, 2, 7)
    assert (second.watches, second.ratings, second.recommendations, second.rejected) == (5, 3, 2, 7)
    assert after_first == {
        "viewers": 3,
        "movies": 2,
        "ratings": 3,
        "watches": 2,
        "minutes": 4,  # 0, 1, 2 of the matrix and 40 of mr & mrs smith
        "observed": 2,
        "rejected": 7,
    }
    assert _counts() == after_first


@pytest.mark.django_db
def test_watch_lines_fold_into_one_row_per_viewer_and_movie():
    stream_ingest_batch(lines=MIXED_LINES[:4])
    stream_ingest_batch(lines=["2023-10-01T12:30:00,7,GET /data/m/the+matrix+1999/30.mpg"])

    watch = Watch.objects.get(viewer_id=7, movie__slug="the+matrix+1999")
    assert watch.minutes_watched == 4
    assert watch.max_minute == 30
    assert watch.first_seen_at.isoformat() == "2023-10-01T12:00:00+00:00"
    assert watch.last_seen_at.isoformat() == "2023-10-01T12:30:00+00:00"
    assert watch.has_watched(2)
    assert not watch.has_watched(3)


@pytest.mark.django_db
def test_creates_unknown_movies_with_title_and_year_from_the_slug():
    stream_ingest_batch(lines=["2023-10-01T12:00:00,7,GET /rate/the+shawshank+redemption+1994=5"])

    movie = Movie.objects.get(slug="the+shawshank+redemption+1994")
    assert (movie.title, movie.year) == ("The Shawshank Redemption", 1994)
    assert Viewer.objects.get(id=7).is_profiled is False


@pytest.mark.django_db
def test_keeps_rating_history_and_the_latest_is_current():
    stream_ingest_batch(lines=MIXED_LINES[5:8])

    scores = list(Rating.objects.filter(viewer_id=8).order_by("rated_at").values_list("score", flat=True))
    assert scores == [2, 3]


@pytest.mark.django_db
def test_rejected_lines_are_kept_verbatim_with_reason():
    stream_ingest_batch(lines=["2023-10-01T12:07:00,7,GET /rate/the+matrix+1999=E"], source="file:x.log")

    rejected = RejectedLine.objects.get()
    assert rejected.reason == "bad_rating"
    assert rejected.raw == "2023-10-01T12:07:00,7,GET /rate/the+matrix+1999=E"
    assert rejected.source == "file:x.log"


@pytest.mark.django_db
def test_a_rating_dated_far_in_the_future_is_kept_aside_and_does_not_pin_the_current_rating():
    from datetime import timedelta

    from django.utils import timezone

    soon = (timezone.now() + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S")
    result = stream_ingest_batch(
        lines=["9999-12-31T23:59:59,9,GET /rate/heat+1995=1", f"{soon},9,GET /rate/heat+1995=5"]
    )

    assert result.by_reason == {"future_timestamp": 1}
    assert list(Rating.objects.filter(viewer_id=9).values_list("score", flat=True)) == [5]  # within the skew
    assert RejectedLine.objects.get().reason == "future_timestamp"


@pytest.mark.django_db
def test_rejected_lines_past_the_bound_are_counted_not_stored(settings):
    settings.STREAM_REJECTED_KEEP = 3
    garbage = [f"garbage line {number}" for number in range(10)]

    stream_ingest_batch(lines=garbage)

    assert RejectedLine.objects.count() == 3
    assert RejectionOverflow.objects.get(reason="missing_fields").count == 7
    assert rejections_total() == 10


@pytest.mark.django_db
def test_a_database_hiccup_is_retried_and_loses_nothing(monkeypatch):
    real_ingest = services.stream_ingest_batch
    failures = iter([OperationalError("server has gone away")])

    def flaky_ingest(**kwargs):
        for error in failures:
            raise error
        return real_ingest(**kwargs)

    monkeypatch.setattr(services, "stream_ingest_batch", flaky_ingest)
    monkeypatch.setattr("stream.services.time.sleep", lambda seconds: None)

    run = stream_consume(source=IterableSource(MIXED_LINES), batch_size=100)

    assert run.status == IngestRun.Status.FINISHED
    assert Rating.objects.count() == 3
    assert Watch.objects.count() == 2


@pytest.mark.django_db
def test_a_database_that_stays_away_fails_the_run_without_committing(monkeypatch):
    committed = []

    class RecordingSource(IterableSource):
        def commit(self):
            committed.append(True)

    def broken_ingest(**kwargs):
        raise OperationalError("server has gone away")

    monkeypatch.setattr(services, "stream_ingest_batch", broken_ingest)
    monkeypatch.setattr(services, "database_answers", lambda: False)  # the server is gone
    monkeypatch.setattr("stream.services.time.sleep", lambda seconds: None)

    with pytest.raises(services.DatabaseAway):
        stream_consume(source=RecordingSource(MIXED_LINES), retries=2)

    assert committed == []
    assert IngestRun.objects.get().status == IngestRun.Status.FAILED


@pytest.mark.django_db
def test_known_id_cache_is_not_updated_when_the_batch_rolls_back(monkeypatch):
    known = KnownIds()

    def fail(*args, **kwargs):
        raise OperationalError("lost connection")

    monkeypatch.setattr(services, "_store_recommendations", fail)
    with pytest.raises(OperationalError):
        stream_ingest_batch(lines=MIXED_LINES[:1], known=known)

    assert known.viewers == set()
    assert known.movies == {}
    assert Viewer.objects.count() == 0


@pytest.mark.django_db
def test_consume_stream_command_stops_after_max_events(tmp_path, capsys):
    log = _write(tmp_path / "events.log", MIXED_LINES)

    call_command("consume_stream", source=f"file:{log}", max_events=4)

    assert IngestRun.objects.get().lines == 4
    assert "finished: 4 lines" in capsys.readouterr().out


@pytest.mark.django_db
def test_consume_stream_command_ingests_the_simulator():
    call_command("consume_stream", source="simulator", simulator="seed=3,viewers=20,movies=30", max_events=5000)

    run = IngestRun.objects.get()
    assert run.lines == 5000
    assert run.rejected == 0
    assert Watch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("file:/does/not/exist.log", "cannot open /does/not/exist.log"),
        ("ftp://example.org/log", "unknown source"),
        ("kafka://", "expected kafka://HOST:PORT/TOPIC"),
    ],
)
def test_consume_stream_command_names_a_bad_source(source, message):
    with pytest.raises(CommandError, match=message):
        call_command("consume_stream", source=source)


@pytest.mark.django_db
def test_consume_stream_command_rejects_unknown_simulator_options():
    with pytest.raises(CommandError, match="unknown simulator option 'colour'"):
        call_command("consume_stream", source="simulator", simulator="colour=blue")


POISON = "2023-10-01T12:09:00,77,GET /rate/poison+2000=3"


@pytest.mark.django_db
def test_a_line_the_database_refuses_is_kept_aside_and_the_rest_of_its_batch_commits(monkeypatch):
    committed = []

    class RecordingSource(IterableSource):
        def commit(self):
            committed.append(True)

    real_store = services._store_ratings

    def refusing_store(events, movie_ids):
        if any(event.movie == "poison+2000" for event in events):
            raise DataError("Incorrect integer value")  # what a database says of one bad row
        return real_store(events, movie_ids)

    monkeypatch.setattr(services, "_store_ratings", refusing_store)

    run = stream_consume(source=RecordingSource([*MIXED_LINES, POISON]), batch_size=100)

    assert run.status == IngestRun.Status.FINISHED
    assert committed == [True]
    assert Rating.objects.count() == 3  # every other rating of the batch is stored
    assert Watch.objects.count() == 2
    kept = RejectedLine.objects.get(reason="unstorable")
    assert kept.raw == POISON
    assert kept.detail == "DataError: Incorrect integer value"
    assert run.rejected == 1 + sum(1 for line in MIXED_LINES if isinstance(parse_line(line), Rejection))


@pytest.mark.django_db
def test_a_movie_id_with_capitals_is_the_same_movie_on_every_database():
    lines = [
        "2023-10-01T12:00:00,5,GET /rate/chicken+run+2000=4",
        "2023-10-01T12:01:00,6,GET /rate/Chicken+Run+2000=4",
        "2023-10-01T12:02:00,7,GET /data/m/CHICKEN+RUN+2000/3.mpg",
    ]

    run = stream_consume(source=IterableSource(lines))

    assert run.status == IngestRun.Status.FINISHED
    assert list(Movie.objects.values_list("slug", flat=True)) == ["chicken+run+2000"]
    assert Rating.objects.count() == 2
    assert Watch.objects.get().movie.slug == "chicken+run+2000"


def test_a_huge_line_is_rejected_without_being_read_whole(tmp_path, settings):
    settings.STREAM_MAX_LINE_BYTES = 1024
    path = tmp_path / "huge.log"
    with path.open("wb") as handle:
        handle.write(MIXED_LINES[0].encode() + b"\n")
        handle.write(b"2023-10-01T12:00:00,5,GET /rate/" + b"x" * 20_000_000 + b"=4\n")
        handle.write(MIXED_LINES[1].encode() + b"\n")
    source = FileSource(str(path))

    tracemalloc.start()
    lines = [line for batch in source.batches(batch_size=10) for line in batch]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert len(lines) == 3
    assert peak < 1_000_000  # the 20 MB line never was in memory
    assert parse_line(lines[1], max_length=1024).reason == "too_long"
    assert lines[2] == MIXED_LINES[1].encode() + b"\n"  # the next line is intact
    assert source.done == path.stat().st_size


def test_lines_cut_for_length_are_logged_once_when_the_file_is_closed_not_one_warning_each(tmp_path, settings, caplog):
    settings.STREAM_MAX_LINE_BYTES = 1024
    path = tmp_path / "long.log"
    path.write_bytes(b"".join(b"2023-10-01T12:00:00,5,GET /rate/" + b"x" * 5000 + b"=4\n" for _ in range(7)))
    source = FileSource(str(path))
    with caplog.at_level("WARNING", logger="stream.sources"):
        assert sum(len(batch) for batch in source.batches(batch_size=3)) == 7
        assert caplog.records == []
        source.close()
    assert [record.getMessage() for record in caplog.records] == [
        "7 lines longer than 1,024 bytes were cut to be rejected unread (too_long)"
    ]


@pytest.mark.django_db
def test_a_run_whose_consumer_died_is_shown_abandoned_with_what_it_stored(dead_pid):
    import socket
    from datetime import timedelta

    from django.utils import timezone

    from stream.services import ingest_runs_abandon

    last_batch = timezone.now() - timedelta(minutes=3)
    killed = IngestRun.objects.create(
        source="kafka://k/movielog", started_at=last_batch - timedelta(hours=1), updated_at=last_batch,
        holder=f"{socket.gethostname()}:{dead_pid}:deadbeef", lines=15_000, ratings=900, batches=3,
    )  # fmt: skip
    elsewhere = IngestRun.objects.create(
        source="kafka://k/movielog", started_at=last_batch, holder="another-host:1:cafe"
    )

    assert ingest_runs_abandon() == [killed]

    killed.refresh_from_db()
    assert killed.status == IngestRun.Status.ABANDONED
    assert (killed.lines, killed.ratings, killed.finished_at) == (15_000, 900, last_batch)
    assert "is gone" in killed.error
    elsewhere.refresh_from_db()
    assert elsewhere.status == IngestRun.Status.RUNNING  # another host's, alive 3 minutes ago


@pytest.mark.django_db
def test_a_run_of_another_host_silent_past_the_stale_bound_is_abandoned_and_a_beating_one_is_not(settings):
    from datetime import timedelta

    from django.utils import timezone

    from stream.services import ingest_runs_abandon

    settings.STREAM_RUN_STALE_SECONDS = 300
    now = timezone.now()
    silent, beating = (
        IngestRun.objects.create(
            source="kafka://k/movielog", started_at=now - timedelta(hours=1), updated_at=now - timedelta(seconds=age),
            holder=f"{container}:7:cafe", lines=5_000,
        )
        for container, age in (("3f2a9c1d0b7e", 301), ("8e1d4b2c6a90", 200))
    )  # fmt: skip

    assert ingest_runs_abandon() == [silent]

    silent.refresh_from_db()
    assert (silent.status, silent.lines) == (IngestRun.Status.ABANDONED, 5_000)
    assert "showed no sign of life for 300 s" in silent.error
    beating.refresh_from_db()
    assert beating.status == IngestRun.Status.RUNNING


@pytest.mark.django_db
def test_every_batch_saves_the_runs_counts():
    seen = []

    def after(run, result):
        seen.append(IngestRun.objects.get(pk=run.pk).lines)

    stream_consume(source=IterableSource(MIXED_LINES * 3), batch_size=len(MIXED_LINES), on_batch=after)

    assert seen == [len(MIXED_LINES), 2 * len(MIXED_LINES), 3 * len(MIXED_LINES)]
