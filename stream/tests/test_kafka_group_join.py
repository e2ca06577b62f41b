"""The consumer's idle time against a real Kafka broker's group join (started by
scripts/services.sh). Not marked ``engine``: what it checks is Kafka's, so it runs in the
SQLite pass only."""

import logging
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from catalog.models import Rating
from stream.models import IngestRun
from stream.services import ConsumerStop, stream_consume
from stream.sources import KafkaSource

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db]

# A member of the group that joins, says so, and waits to be killed. Its join is bounded: a
# broker that never assigns it fails the test with a reason instead of hanging the pass.
_KILLED_MEMBER = """
import sys, time
from kafka import KafkaConsumer
consumer = KafkaConsumer(sys.argv[2], bootstrap_servers=sys.argv[1], group_id=sys.argv[3], session_timeout_ms=6000)
deadline = time.monotonic() + 120
while not consumer.assignment():
    if time.monotonic() > deadline:
        print("no partition assigned within 120 s", flush=True)
        sys.exit(1)
    consumer.poll(timeout_ms=200)
    time.sleep(0.05)
print("joined", flush=True)
time.sleep(600)
"""


def _killed_member(topic: str, group: str) -> str:
    member = subprocess.Popen(
        [sys.executable, "-c", _KILLED_MEMBER, settings.KAFKA_BOOTSTRAP, topic, group],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert member.stdout is not None
    said = member.stdout.readline().strip()
    member.send_signal(signal.SIGKILL)
    member.wait()
    return said


def test_idle_time_is_counted_from_joining_the_group_not_from_starting():
    topic = f"test-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    try:
        # A consumer of the group killed without leaving it: the next one's join waits for the
        # dead member's session to time out (6 s, the broker's least), longer than the idle time.
        group = f"g-{topic}"
        assert _killed_member(topic, group) == "joined"
        lines = [f"2023-10-01T12:00:00,{viewer},GET /rate/heat+1995=4".encode() for viewer in range(1, 201)]
        producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP, acks="all")
        for line in lines:
            producer.send(topic, value=line)
        producer.flush()
        producer.close()

        source = KafkaSource(bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic, group=group)
        run = stream_consume(source=source, idle_seconds=3, batch_size=500)

        assert run.lines == len(lines)
    finally:
        admin.delete_topics([topic])
        admin.close()


class _SlowFirstBatch(KafkaSource):
    """A real consumer whose first batch takes longer to store than its poll interval allows,
    as with a database slow to answer, while another member joins the group meanwhile."""

    def __init__(self, *, meanwhile: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._meanwhile: Callable[[], None] | None = meanwhile

    def commit(self) -> None:
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        super().commit()


def test_a_rebalance_during_a_batch_refuses_its_commit_and_the_consumer_goes_on_losing_nothing(caplog):
    topic = f"test-{uuid.uuid4().hex[:10]}"
    group = f"g-{topic}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    lines = [f"2023-10-01T12:00:00,{viewer},GET /rate/heat+1995=4".encode() for viewer in range(1, 301)]
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP, acks="all")
    for line in lines:
        producer.send(topic, key=line.split(b",")[1], value=line)
    producer.flush()
    producer.close()

    other_read: list[bytes] = []
    other_assigned, stop_other = threading.Event(), threading.Event()

    def other_member() -> None:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.KAFKA_BOOTSTRAP,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            while not stop_other.is_set():
                polled = consumer.poll(timeout_ms=200)
                if consumer.assignment():
                    other_assigned.set()
                other_read.extend(record.value for records in polled.values() for record in records)
                if polled:
                    consumer.commit()
        finally:
            consumer.close(autocommit=False)

    other = threading.Thread(target=other_member, daemon=True)

    def join_while_storing() -> None:
        other.start()
        # The group waits for this consumer to rejoin for its poll interval (3 s), then
        # rebalances without it: the other member holds every partition.
        assert other_assigned.wait(60), "the second member was never assigned a partition"

    source = _SlowFirstBatch(
        meanwhile=join_while_storing,
        bootstrap=settings.KAFKA_BOOTSTRAP,
        topic=topic,
        group=group,
        max_poll_interval_ms=3000,
    )
    try:
        with caplog.at_level(logging.WARNING, logger="stream.sources"):
            run = stream_consume(source=source, idle_seconds=8, batch_size=50)
    finally:
        stop_other.set()
        other.join(30)
        admin.delete_topics([topic])
        admin.close()

    assert run.status == IngestRun.Status.FINISHED
    assert "the group rebalanced during the batch" in caplog.text
    stored = {line for line in lines if Rating.objects.filter(viewer_id=int(line.split(b",")[1])).exists()}
    # The batch whose commit was refused was read again by the other member: read twice,
    # stored once, and every line is stored or read.
    assert stored & set(other_read)
    assert stored | set(other_read) == set(lines)
    assert Rating.objects.count() == len(stored)


def test_a_stop_whose_signal_the_kafka_client_swallowed_still_ends_the_waiting_consumer():
    topic = f"test-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    stop = ConsumerStop()
    # The handler's StopRequested raised inside the client's poll and caught there: only the
    # request is left, set while the consumer waits on an empty topic.
    threading.Timer(5.0, lambda: setattr(stop, "requested", "SIGTERM")).start()
    try:
        source = KafkaSource(bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic, group=f"g-{topic}")
        run = stream_consume(source=source, idle_seconds=60, stop=stop)
    finally:
        admin.delete_topics([topic])
        admin.close()

    assert (run.status, run.error) == (IngestRun.Status.STOPPED, "stopped by SIGTERM")
    assert run.finished_at is not None
    assert (run.finished_at - run.started_at).total_seconds() < 30


def test_an_idle_consumer_keeps_showing_its_run_alive_to_the_consumers_of_other_hosts(monkeypatch):
    from stream import services

    monkeypatch.setattr(services, "RUN_HEARTBEAT_SECONDS", 0.5)
    topic = f"test-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        source = KafkaSource(bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic, group=f"idle-{topic}")
        run = stream_consume(source=source, idle_seconds=3)
    finally:
        admin.delete_topics([topic])
        admin.close()

    stored = IngestRun.objects.get(pk=run.pk)
    assert (stored.lines, stored.batches) == (0, 0)
    assert stored.updated_at is not None
    assert stored.finished_at is not None
    # No batch was stored, and the run still said it was alive until its last idle second.
    assert (stored.updated_at - stored.started_at).total_seconds() >= 2.5
    assert (stored.finished_at - stored.updated_at).total_seconds() <= 1.5
