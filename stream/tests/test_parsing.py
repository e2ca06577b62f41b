from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.parsing import (
    REJECTION_REASONS,
    RateEvent,
    RecommendationEvent,
    Rejection,
    WatchEvent,
    parse_line,
    parse_timestamp,
)


def test_parses_watch_line():
    event = parse_line("2023-10-01T12:03:11,83916,GET /data/m/god+speed+you+black+emperor+1976/17.mpg")

    assert event == WatchEvent(
        at=datetime(2023, 10, 1, 12, 3, 11, tzinfo=UTC),
        viewer_id=83916,
        movie="god+speed+you+black+emperor+1976",
        minute=17,
    )


def test_parses_rating_line():
    event = parse_line(b"2023-10-01T12:04:26,246904,GET /rate/chicken+run+2000=5\n")

    assert event == RateEvent(
        at=datetime(2023, 10, 1, 12, 4, 26, tzinfo=UTC), viewer_id=246904, movie="chicken+run+2000", score=5
    )


def test_parses_successful_recommendation_line():
    line = (
        "2023-10-01T12:05:43.149,156483,recommendation request recsite.example.org:8082, status 200, "
        "result: existenz+1999, toy+story+2+1999, 65 ms"
    )

    event = parse_line(line)

    assert isinstance(event, RecommendationEvent)
    assert event.at == datetime(2023, 10, 1, 12, 5, 43, 149000, tzinfo=UTC)
    assert event.host == "recsite.example.org:8082"
    assert event.status == 200
    assert event.results == ("existenz+1999", "toy+story+2+1999")
    assert event.response_ms == 65
    assert event.error == ""


def test_keeps_client_timeout_with_its_exception_text():
    line = (
        "2023-10-01T12:06:02.5,17,recommendation request host:8082, status 0, result: "
        "java.util.concurrent.TimeoutException: Request timeout to host/10.0.0.1:8082 after 800 ms, 815 ms"
    )

    event = parse_line(line)

    assert isinstance(event, RecommendationEvent)
    assert event.status == 0
    assert event.results == ()
    assert event.error.startswith("java.util.concurrent.TimeoutException")
    assert event.error.endswith("after 800 ms")
    assert event.response_ms == 815
    assert event.at.microsecond == 500000


def test_parses_recommendation_with_empty_result():
    event = parse_line("2023-10-01T12:05:43,1,recommendation request h:8082, status 200, result: , 3 ms")

    assert isinstance(event, RecommendationEvent)
    assert event.results == ()


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2023-10-01T12:03:11", datetime(2023, 10, 1, 12, 3, 11, tzinfo=UTC)),
        ("2023-10-01T12:03:11.5", datetime(2023, 10, 1, 12, 3, 11, 500000, tzinfo=UTC)),
        ("2023-10-01T12:03:11.149", datetime(2023, 10, 1, 12, 3, 11, 149000, tzinfo=UTC)),
        ("2023-10-01T12:03:11.123456789", datetime(2023, 10, 1, 12, 3, 11, 123456, tzinfo=UTC)),
    ],
)
def test_reads_timestamps_with_any_fraction_up_to_nanoseconds(stamp, expected):
    assert parse_timestamp(stamp) == expected


@pytest.mark.parametrize(
    "stamp", ["2023-13-01T00:00:00", "2023-02-30T00:00:00", "2023-10-01 12:00:00", "2023-10-01T12:00:00.1234567890", ""]
)
def test_rejects_impossible_or_malformed_timestamps(stamp):
    assert parse_timestamp(stamp) is None


def test_an_event_after_the_latest_allowed_moment_is_rejected_and_one_at_it_is_not():
    latest = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    line = "{},7,GET /rate/heat+1995=4"

    future = parse_line(line.format("9999-12-31T23:59:59"), latest=latest)
    at_the_bound = parse_line(line.format("2026-12-01T12:00:00"), latest=latest)

    assert isinstance(future, Rejection)
    assert future.reason == "future_timestamp"
    assert "9999-12-31T23:59:59 is after 2026-12-01T12:00:00+00:00" in future.detail
    assert isinstance(at_the_bound, RateEvent)


@pytest.mark.parametrize(
    "slug",
    [
        "the+shawshank+redemption+1994",
        "mr++mrs+smith+2005",
        "spider-man+2002",
        "heart_dream+1982",
        "se7en+1995",
        "the+2+towers",
        "untitled",
    ],
)
def test_accepts_every_slug_shape_the_platform_uses(slug):
    event = parse_line(f"2023-10-01T12:00:00,5,GET /data/m/{slug}/0.mpg")

    assert isinstance(event, WatchEvent)
    assert event.movie == slug


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("2023-10-01T12:00:00,5,GET /data/m/some+movie+2000/6x1.mpg", "bad_minute"),
        ("2023-10-01T12:00:00,5,GET /data/m/some+movie+2000/-1.mpg", "bad_minute"),
        ("2023-10-01T12:00:00,5,GET /data/m/some+movie+2000/99999999.mpg", "bad_minute"),
        ("2023-10-01T12:00:00,5,GET /rate/some+movie+2000=E", "bad_rating"),
        ("2023-10-01T12:00:00,5,GET /rate/some+movie+2000=7", "bad_rating"),
        ("2023-10-01T12:00:00,5,GET /rate/some+movie+2000=0", "bad_rating"),
        ("2023-10-01T12:00:00,5,GET /rate/some+movie+2000", "bad_rating"),
        ("2023-10-01T12:00:00,GET /data/m/some+movie+2000/3.mpg", "missing_fields"),
        ("2023-10-01T12:00:00,5", "missing_fields"),
        ("yesterday,5,GET /rate/some+movie+2000=4", "bad_timestamp"),
        ("2023-10-01T12:00:00,user5,GET /rate/some+movie+2000=4", "bad_viewer_id"),
        ("2023-10-01T12:00:00,0,GET /rate/some+movie+2000=4", "bad_viewer_id"),
        ("2023-10-01T12:00:00,-3,GET /rate/some+movie+2000=4", "bad_viewer_id"),
        ("2023-10-01T12:00:00,99999999999,GET /rate/some+movie+2000=4", "bad_viewer_id"),
        ("2023-10-01T12:00:00,5,POST /login", "unknown_request"),
        ("2023-10-01T12:00:00,5,GET /rate/some movie=4", "bad_movie_id"),
        ("2023-10-01T12:00:00,5,GET /data/m/bad/slug/3.mpg", "bad_movie_id"),
        ("2023-10-01T12:00:00,5,GET /data/m/some+movie+2000/3", "bad_minute"),
        ("2023-10-01T12:00:00,5,recommendation request h:8082, status 200, result: a+1, 5", "bad_result"),
        ("2023-10-01T12:00:00,5,recommendation request h:8082, status 999, result: x, 5 ms", "bad_status"),
        ("2023-10-01T12:00:00,5,recommendation request h:8082, status 200, result: not a slug, 5 ms", "bad_result"),
        ("2023-10-01T12:00:00,5,GET /rate/a+1=4\x00\x07", "control_characters"),
    ],
)
def test_rejects_damaged_lines_with_a_reason(line, reason):
    result = parse_line(line)

    assert isinstance(result, Rejection)
    assert result.reason == reason


def test_rejects_binary_junk_as_not_utf8():
    result = parse_line(b"\xff\xfe\x00junk\x81")

    assert isinstance(result, Rejection)
    assert result.reason == "not_utf8"


def test_rejects_a_line_of_100_kilobytes_without_reading_it():
    line = b"2023-10-01T12:00:00,5,GET /data/m/" + b"x" * 100_000 + b"/1.mpg"

    result = parse_line(line, max_length=8192)

    assert isinstance(result, Rejection)
    assert result.reason == "too_long"
    assert len(result.line) == 8192


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_input_is_either_an_event_or_a_known_rejection(raw):
    result = parse_line(raw)

    if isinstance(result, Rejection):
        assert result.reason in REJECTION_REASONS
    else:
        assert isinstance(result, WatchEvent | RateEvent | RecommendationEvent)


_slug = st.from_regex(r"[a-z0-9][a-z0-9+_-]{0,40}", fullmatch=True)
_stamp = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)).map(
    lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S")
)


@settings(max_examples=300, deadline=None)
@given(stamp=_stamp, viewer=st.integers(1, 2_147_483_647), slug=_slug, minute=st.integers(0, 10_000))
def test_well_formed_watch_lines_always_parse(stamp, viewer, slug, minute):
    result = parse_line(f"{stamp},{viewer},GET /data/m/{slug}/{minute}.mpg")

    at = parse_timestamp(stamp)
    assert at is not None
    assert result == WatchEvent(at=at, viewer_id=viewer, movie=slug, minute=minute)


@settings(max_examples=300, deadline=None)
@given(
    stamp=_stamp,
    viewer=st.integers(1, 2_147_483_647),
    slug=_slug,
    score=st.integers(1, 5),
    cut=st.integers(0, 60),
    junk=st.text(min_size=1, max_size=5),
)
def test_damaging_a_good_line_never_raises(stamp, viewer, slug, score, cut, junk):
    line = f"{stamp},{viewer},GET /rate/{slug}={score}"
    damaged = line[:cut] + junk + line[cut + 1 :]

    result = parse_line(damaged)

    assert isinstance(result, Rejection | RateEvent | WatchEvent | RecommendationEvent)


@pytest.mark.parametrize(
    ("request_text", "movie"),
    [
        ("GET /rate/Chicken+Run+2000=4", "chicken+run+2000"),
        ("GET /data/m/CHICKEN+RUN+2000/3.mpg", "chicken+run+2000"),
    ],
)
def test_movie_ids_with_capitals_are_folded_to_the_one_stored_form(request_text, movie):
    # MariaDB's collation finds "Chicken+Run+2000" equal to "chicken+run+2000"; SQLite would
    # not. Folding here makes both databases see one movie.
    result = parse_line(f"2023-10-01T12:00:00,7,{request_text}")

    assert result.movie == movie


def test_recommended_ids_with_capitals_are_folded():
    line = "2023-10-01T12:00:00,7,recommendation request h:8082, status 200, result: Toy+Story+1995, up+2009, 9 ms"

    assert parse_line(line).results == ("toy+story+1995", "up+2009")


@pytest.mark.parametrize("slug", ["\u017fhrek+2001", "\u212aing+kong+1933", "am\u00e9lie+2001"])
def test_movie_ids_with_letters_outside_ascii_are_rejected(slug):
    # Python folds the long s and the Kelvin sign into [a-z] under IGNORECASE, and a database
    # collation may equate them with ASCII letters: refused, with the id in the detail.
    result = parse_line(f"2023-10-01T12:00:00,7,GET /rate/{slug}=4")

    assert isinstance(result, Rejection)
    assert (result.reason, result.detail) == ("bad_movie_id", slug)
