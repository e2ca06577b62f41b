"""Parsing the platform's event log: one pure function, ``parse_line``.

Every input, however damaged, comes back as exactly one ``WatchEvent``, ``RateEvent``,
``RecommendationEvent`` or ``Rejection`` (with a short machine-readable reason). Nothing raises.

    2023-10-01T12:03:11,83916,GET /data/m/god+speed+you+black+emperor+1976/17.mpg
    2023-10-01T12:04:26,246904,GET /rate/chicken+run+2000=5
    2023-10-01T12:05:43.149,156483,recommendation request host:8082, status 200, result: a+1999, b+2000, 65 ms
    2023-10-01T12:06:02.5,17,recommendation request host:8082, status 0, result: java...Exception: ..., 815 ms
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from catalog.identifiers import MAX_VIEWER_ID, movie_id_fold

MAX_MINUTE = 10_000  # longer than any film; the bitmap of minutes stays small
MAX_RESPONSE_MS = 86_400_000
MAX_RESULTS = 100

_TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")
_VIEWER = re.compile(r"^[0-9]{1,10}$")
_WATCH = re.compile(r"^GET /data/m/(?P<slug>[^/]+)/(?P<minute>[^/]*)\.mpg$")
_RATE = re.compile(r"^GET /rate/(?P<slug>[^=]+)=(?P<score>.*)$")
_RECOMMENDATION = re.compile(
    r"^recommendation request (?P<host>[^,]*), status (?P<status>-?\d{1,4}), "
    r"result: (?P<result>.*), (?P<ms>\d{1,9}) ms$",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    at: datetime
    viewer_id: int
    movie: str
    minute: int
    kind: str = "watch"


@dataclass(frozen=True, slots=True)
class RateEvent:
    at: datetime
    viewer_id: int
    movie: str
    score: int
    kind: str = "rate"


@dataclass(frozen=True, slots=True)
class RecommendationEvent:
    at: datetime
    viewer_id: int
    host: str
    status: int
    results: tuple[str, ...]
    error: str
    response_ms: int
    kind: str = "recommendation"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    line: str
    kind: str = "rejected"


Event = WatchEvent | RateEvent | RecommendationEvent
Parsed = Event | Rejection

REJECTION_REASONS = (
    "empty",
    "too_long",
    "not_utf8",
    "control_characters",
    "missing_fields",
    "bad_timestamp",
    "future_timestamp",
    "bad_viewer_id",
    "unknown_request",
    "bad_movie_id",
    "bad_minute",
    "bad_rating",
    "bad_status",
    "bad_result",
)


def parse_timestamp(text: str) -> datetime | None:
    """``YYYY-MM-DDTHH:MM:SS`` with 0-9 fractional digits, read as UTC (microsecond precision)."""
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    micro = int((fraction or "0").ljust(6, "0")[:6])
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)
    except ValueError:
        return None


def parse_line(raw: bytes | str, *, max_length: int = 8192, latest: datetime | None = None) -> Parsed:
    """Parse one line of the platform's log; never raises. An event after ``latest`` (now plus
    the clock skew allowed, chosen by the caller so this stays pure) is rejected: stored, a
    rating dated 9999-12-31 would be the viewer's "current" rating of the movie for good."""
    if isinstance(raw, bytes):
        if len(raw) > max_length:
            return _reject("too_long", f"{len(raw)} bytes", raw[:max_length].decode("utf-8", "replace"))
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return _reject("not_utf8", f"invalid byte at {error.start}", raw.decode("utf-8", "replace"))
    else:
        line = raw
        if len(line) > max_length:
            return _reject("too_long", f"{len(line)} characters", line[:max_length])
    line = line.rstrip("\r\n")
    if not line.strip():
        return _reject("empty", "", line)
    if not line.isprintable():
        return _reject("control_characters", "", line)

    parts = line.split(",", 2)
    if len(parts) != 3:
        return _reject("missing_fields", f"{len(parts)} of 3 fields", line)
    stamp, viewer_text, request = parts
    at = parse_timestamp(stamp)
    if at is None:
        return _reject("bad_timestamp", stamp[:40], line)
    if latest is not None and at > latest:
        return _reject("future_timestamp", f"{stamp[:40]} is after {latest.isoformat(timespec='seconds')}", line)
    if not _VIEWER.match(viewer_text) or not 0 < int(viewer_text) <= MAX_VIEWER_ID:
        return _reject("bad_viewer_id", viewer_text[:40], line)
    viewer_id = int(viewer_text)

    if request.startswith("GET /data/m/"):
        return _parse_watch(at, viewer_id, request, line)
    if request.startswith("GET /rate/"):
        return _parse_rate(at, viewer_id, request, line)
    if request.startswith("recommendation request "):
        return _parse_recommendation(at, viewer_id, request, line)
    return _reject("unknown_request", request[:40], line)


def _reject(reason: str, detail: str, line: str) -> Rejection:
    return Rejection(reason=reason, detail=detail, line=line)


def _parse_watch(at: datetime, viewer_id: int, request: str, line: str) -> Parsed:
    match = _WATCH.match(request)
    if not match:
        return _reject("bad_minute" if request.count("/") == 4 else "bad_movie_id", request[:60], line)
    slug, minute_text = movie_id_fold(match["slug"]), match["minute"]
    if slug is None:
        return _reject("bad_movie_id", match["slug"][:60], line)
    if not minute_text.isascii() or not minute_text.isdigit() or int(minute_text) > MAX_MINUTE:
        return _reject("bad_minute", minute_text[:20], line)
    return WatchEvent(at=at, viewer_id=viewer_id, movie=slug, minute=int(minute_text))


def _parse_rate(at: datetime, viewer_id: int, request: str, line: str) -> Parsed:
    match = _RATE.match(request)
    if not match:
        return _reject("bad_rating", "no '='", line)
    slug, score_text = movie_id_fold(match["slug"]), match["score"]
    if slug is None:
        return _reject("bad_movie_id", match["slug"][:60], line)
    if score_text not in {"1", "2", "3", "4", "5"}:
        return _reject("bad_rating", score_text[:20], line)
    return RateEvent(at=at, viewer_id=viewer_id, movie=slug, score=int(score_text))


def _parse_recommendation(at: datetime, viewer_id: int, request: str, line: str) -> Parsed:
    match = _RECOMMENDATION.match(request)
    if not match:
        return _reject("bad_result", "not 'host, status N, result: ..., N ms'", line)
    status = int(match["status"])
    if not 0 <= status <= 599:
        return _reject("bad_status", match["status"], line)
    response_ms = int(match["ms"])
    if response_ms > MAX_RESPONSE_MS:
        return _reject("bad_result", f"{response_ms} ms", line)
    result = match["result"].strip()
    results: tuple[str, ...] = ()
    error = ""
    if status == 200:
        items = tuple(movie_id_fold(item.strip()) for item in result.split(",")) if result else ()
        if len(items) > MAX_RESULTS or None in items:
            return _reject("bad_result", result[:60], line)
        results = tuple(item for item in items if item is not None)
    else:
        # Client timeouts (status 0) and server errors carry an exception text, kept as-is.
        error = result
    return RecommendationEvent(
        at=at,
        viewer_id=viewer_id,
        host=match["host"].strip()[:255],
        status=status,
        results=results,
        error=error[:1000],
        response_ms=response_ms,
    )
