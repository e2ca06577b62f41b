"""Ingestion by a consumer group on the real Kafka and MariaDB (started by scripts/services.sh):
``consume_stream`` processes over a six-partition topic while the simulator publishes, one killed
and one added on the way, and the database holds exactly what was published. Runs in the MariaDB
pass only: several processes writing at once is what SQLite cannot do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from catalog.models import Movie, Rating, Watch
from simulator.services import simulator_publish
from simulator.world import World
from stream.models import IngestRun, ObservedRecommendation, RejectedLine
from stream.parsing import RateEvent, RecommendationEvent, WatchEvent, parse_line
from stream.services import RAW_KEEP_CHARS

pytestmark = [pytest.mark.integration, pytest.mark.mysql, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 6


class _Expected:
    """What the published lines hold once deduplicated, as the database should store it."""

    def __init__(self, lines: list[bytes]) -> None:
        latest = datetime.now(UTC)
        self.ratings: set[tuple[int, str, datetime]] = set()
        self.minutes: dict[tuple[int, str], set[int]] = defaultdict(set)
        self.requests: set[tuple[object, ...]] = set()
        self.rejected: set[str] = set()
        for line in lines:
            item = parse_line(line, max_length=settings.STREAM_MAX_LINE_BYTES, latest=latest)
            if isinstance(item, WatchEvent):
                self.minutes[item.viewer_id, item.movie].add(item.minute)
            elif isinstance(item, RateEvent):
                self.ratings.add((item.viewer_id, item.movie, item.at))
            elif isinstance(item, RecommendationEvent):
                self.requests.add(
                    (item.at, item.viewer_id, item.host, item.status, tuple(item.results), item.error, item.response_ms)
                )
            else:
                self.rejected.add(item.line[:RAW_KEEP_CHARS])


class _Consumers:
    """``manage.py consume_stream`` processes of one group, on the test's database."""

    def __init__(self, *, topic: str, group: str, logs: Path) -> None:
        db = connection.settings_dict
        self.environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "recsite.settings",
            "DATABASE_URL": f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "VAR_DIR": str(logs),
        }
        self.command = [
            sys.executable,
            "manage.py",
            "consume_stream",
            "--source",
            f"kafka://{settings.KAFKA_BOOTSTRAP}/{topic}",
            "--group",
            group,
            "--batch-size",
            "500",
            "--metrics-port",
            "0",
        ]
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"consumer-{len(self.running) + 1}.log").open("wb")
        process = subprocess.Popen(self.command, cwd=ROOT, env=self.environment, stdout=log, stderr=log)
        self.running.append(process)
        return process

    def stop_all(self) -> list[int | None]:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        try:
            return [process.wait(60) for process in self.running]
        except subprocess.TimeoutExpired as error:
            pytest.fail(f"a consumer did not stop within 60 s of SIGTERM: {error.cmd}\n{self.log_tails()}")

    def log_tails(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-1500:] for path in sorted(self.logs.glob("consumer-*.log")))


def _wait_for(
    condition: Callable[[], bool], *, seconds: float, what: str | Callable[[], str], consumers: _Consumers
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            pytest.fail(f"{said} within {seconds:.0f} s\n{consumers.log_tails()}")
        time.sleep(0.5)


def test_a_consumer_group_killed_and_grown_while_the_stream_flows_stores_every_line_once(tmp_path):
    world = World.generate(seed=11, viewers=300, movies=120)
    lines = list(world.events(sessions_per_viewer=3, days=2, junk_rate=0.01))
    expected = _Expected(lines)
    topic = f"test-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    consumers = _Consumers(topic=topic, group=f"g-{topic}", logs=tmp_path)
    chunks = [lines[start : start + len(lines) // 10 + 1] for start in range(0, len(lines), len(lines) // 10 + 1)]
    published = threading.Event()
    try:
        first = [consumers.start() for _ in range(3)]
        _wait_for(
            lambda: IngestRun.objects.filter(status=IngestRun.Status.RUNNING).count() == 3,
            seconds=60,
            what="three consumers did not start",
            consumers=consumers,
        )

        def publish() -> None:
            # Ten chunks over about fifteen seconds: the stream flows while the group changes.
            for chunk in chunks:
                simulator_publish(lines=chunk, bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic)
                time.sleep(1.5)
            published.set()

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        _wait_for(lambda: Watch.objects.exists(), seconds=60, what="nothing was stored", consumers=consumers)
        time.sleep(2)
        first[0].send_signal(signal.SIGKILL)  # mid-stream, without leaving the group
        first[0].wait()
        time.sleep(4)
        consumers.start()  # a fourth joins while the dead one's partitions are still held
        publisher.join(120)
        assert published.is_set(), "the simulator did not publish every line"

        # Done when every kind of line is in, counted; then compared line by line below.
        minutes = sum(map(len, expected.minutes.values()))
        goal = (len(expected.ratings), minutes, len(expected.requests), len(expected.rejected))

        def stored() -> tuple[int, int, int, int]:
            watched = Watch.objects.aggregate(total=Sum("minutes_watched"))["total"] or 0
            return (
                Rating.objects.count(),
                watched,
                ObservedRecommendation.objects.count(),
                RejectedLine.objects.count(),
            )

        _wait_for(
            lambda: stored() == goal,
            seconds=180,
            what=lambda: f"the group stored {stored()} (ratings, minutes, requests, rejected), not {goal},",
            consumers=consumers,
        )
        time.sleep(2)  # nothing more arrives: a line stored twice would show in the counts
        exits = consumers.stop_all()
    finally:
        for process in consumers.running:
            if process.poll() is None:
                process.kill()
        admin.delete_topics([topic])
        admin.close()

    assert exits == [-signal.SIGKILL, 0, 0, 0], consumers.log_tails()
    slugs = dict(Movie.objects.values_list("id", "slug"))
    stored_ratings = {
        (viewer, slugs[movie], at)
        for viewer, movie, at in Rating.objects.values_list("viewer_id", "movie_id", "rated_at")
    }
    assert stored_ratings == expected.ratings
    assert Rating.objects.count() == len(expected.ratings)
    stored_minutes = {
        (watch.viewer_id, slugs[watch.movie_id]): {
            minute for minute in range(watch.max_minute + 1) if watch.has_watched(minute)
        }
        for watch in Watch.objects.all()
    }
    assert stored_minutes == expected.minutes
    assert ObservedRecommendation.objects.count() == len(expected.requests)
    assert set(RejectedLine.objects.values_list("raw", flat=True)) == expected.rejected
    # The killed consumer's run is marked abandoned by the one started after it, with what it
    # had stored; the others stopped on SIGTERM. Lines re-read after the kill (its last batch,
    # uncommitted) make the runs' sum at least what was published, never less.
    runs = IngestRun.objects.order_by("pk")
    assert sorted(run.status for run in runs) == sorted([IngestRun.Status.ABANDONED] + [IngestRun.Status.STOPPED] * 3)
    assert sum(run.lines for run in runs) >= len(lines)
