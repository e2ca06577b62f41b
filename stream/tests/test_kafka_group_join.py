"""The consumer's idle time against a real Kafka broker's group join (started by
scripts/services.sh). Not marked ``engine``: what it checks is Kafka's, so it runs in the
SQLite pass only."""

import signal
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from stream.services import stream_consume
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
