"""The simulated platform played live against a running recsite.

``simulate`` writes a log of days that have passed; a player is the platform now. At a steady
rate it picks one of the world's viewers, asks the running service for their list over HTTP
(``GET /recommend/<id>``, so the answer is served, timed and recorded exactly as a real one),
logs the request as the platform's client logs it, and lets the viewer choose by their hidden
taste (``World.choose``): a movie from the list or one of their own finding, watched a minute
at a time and sometimes rated. Each line is emitted when its time comes, stamped with the clock,
so the stream, the feedback-loop windows, the served-fairness reports and the canary checks
all see a present that moves.

Watching runs ``speed`` times faster than real time (a two-hour film takes two minutes at 60),
or the demo would wait hours for its first rating. What the player asks and emits goes through
``ask`` (HTTP to a running server, or a test's live server) and comes out of ``batches()``
as lists of lines, which the ``play`` command hands to Kafka or straight to the consumer's own
ingestion. It stops after ``requests`` answers and the viewings they started, or after
``seconds`` or when ``stop()`` says so (a signal handler), handing over what was due by then.
"""

from __future__ import annotations

import heapq
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from simulator.world import World, recommendation_line

# A platform client gives up on a slow answer and logs the timeout as recsite's failure.
CLIENT_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Answer:
    status: int
    slugs: list[str]
    milliseconds: int


Ask = Callable[[int], Answer]
Emit = Callable[[list[bytes]], None]


def http_ask(base_url: str, *, timeout: float = CLIENT_TIMEOUT_SECONDS) -> Ask:
    """``ask(viewer_id)`` over HTTP, as the platform's client calls recsite: the answer's status,
    its movie ids and how long it took; a refused connection or a timeout is status 0 or 504,
    not an exception, because the platform logs those too."""
    root = base_url.rstrip("/")

    def ask(viewer_id: int) -> Answer:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{root}/recommend/{viewer_id}", timeout=timeout) as response:
                body = response.read().decode("utf-8", "replace").strip()
                status = response.status
        except urllib.error.HTTPError as error:
            body, status = "", error.code
        except TimeoutError:
            body, status = "", 504
        except (urllib.error.URLError, ConnectionError):
            body, status = "", 0
        elapsed = max(1, round((time.perf_counter() - started) * 1000))
        slugs = [slug for slug in body.split(",") if slug] if status == 200 else []
        return Answer(status=status, slugs=slugs, milliseconds=elapsed)

    return ask


def http_wait_ready(base_url: str, *, seconds: float, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Wait up to ``seconds`` for the service's ``/readyz`` to answer 200 (a model loaded)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base_url.rstrip('/')}/readyz", timeout=CLIENT_TIMEOUT_SECONDS) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() >= deadline:
            return False
        sleep(0.5)


@dataclass
class PlayStats:
    requests: int = 0
    answered: int = 0
    failed: int = 0
    from_list: int = 0
    own_choice: int = 0
    lines: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


@dataclass
class Player:
    """One live platform; ``run()`` plays until a bound or ``stop()``."""

    world: World
    ask: Ask
    rate: float = 2.0  # requests per second
    speed: float = 60.0  # watched minutes per real minute
    seed: int = 0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    stats: PlayStats = field(default_factory=PlayStats)
    _stopped: bool = False
    _pending: list[tuple[float, int, bytes]] = field(default_factory=list)

    def stop(self) -> None:
        self._stopped = True

    def run(self, emit: Emit, *, requests: int | None = None, seconds: float | None = None) -> PlayStats:
        for lines in self.batches(requests=requests, seconds=seconds):
            emit(lines)
        return self.stats

    def batches(self, *, requests: int | None = None, seconds: float | None = None) -> Iterator[list[bytes]]:
        """The platform's lines as they fall due, a list at a time (never an empty one)."""
        if self.rate <= 0 or self.speed <= 0:
            raise ValueError("rate and speed must be positive")
        rng = random.Random(self.seed)
        index_of = {movie.slug: movie.index for movie in self.world.movies}
        started = self.clock()
        next_request = started
        order = 0
        while not self._stopped:
            now = self.clock()
            asked_enough = requests is not None and self.stats.requests >= requests
            if (seconds is not None and now - started >= seconds) or (asked_enough and not self._pending):
                break
            if now >= next_request and not asked_enough:
                order = self._play_one(rng, index_of, order)
                next_request += 1 / self.rate
            if due := self._due(self.clock()):
                yield due
            wakes = [due_at for due_at, _, _ in self._pending[:1]] + ([] if asked_enough else [next_request])
            wake = min(wakes, default=self.clock())
            self.sleep(max(0.0, min(wake - self.clock(), 1.0)))
        # What was due by now is emitted; viewings still running when the player stops are cut,
        # as a log read at a moment cuts them.
        if due := self._due(self.clock()):
            yield due

    def _play_one(self, rng: random.Random, index_of: dict[str, int], order: int) -> int:
        viewer = rng.randrange(len(self.world.viewers))
        viewer_id = self.world.viewers[viewer].id
        answer = self.ask(viewer_id)
        at = datetime.fromtimestamp(self.clock(), tz=UTC)
        self.stats.requests += 1
        self.stats.statuses[answer.status] = self.stats.statuses.get(answer.status, 0) + 1
        if answer.status == 200:
            self.stats.answered += 1
        else:
            self.stats.failed += 1
        # A refused connection (status 0) reaches the platform's log as a timeout, as it would.
        logged = answer.status or 504
        self._push(at.timestamp(), order, recommendation_line(at, viewer_id, logged, answer.slugs, answer.milliseconds))
        order += 1
        listed = [index_of[slug] for slug in answer.slugs if slug in index_of]
        choice, from_list = self.world.choose(viewer, listed, rng)
        if choice is None:
            return order
        if from_list:
            self.stats.from_list += 1
        else:
            self.stats.own_choice += 1
        # The viewer starts a little after the list appeared (6 to 30 seconds of watched time).
        minute = timedelta(minutes=1) / self.speed
        start = at + minute * rng.uniform(0.1, 0.5)
        for stamp, line in self.world.watch_lines(viewer, choice, start, rng, minute=minute):
            self._push(stamp.timestamp(), order, line)
            order += 1
        return order

    def _push(self, due: float, order: int, line: bytes) -> None:
        heapq.heappush(self._pending, (due, order, line))

    def _due(self, now: float) -> list[bytes]:
        due: list[bytes] = []
        while self._pending and self._pending[0][0] <= now:
            due.append(heapq.heappop(self._pending)[2])
        self.stats.lines += len(due)
        return due
