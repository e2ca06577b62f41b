"""The ingester against a real Kafka broker (started by scripts/services.sh)."""

import uuid

import pytest
from django.conf import settings
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from catalog.models import Rating, Watch
from simulator.world import World
from stream.models import ObservedRecommendation, RejectedLine
from stream.services import rejections_total, stream_consume
from stream.sources import KafkaSource, SourceError

pytestmark = [pytest.mark.engine, pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def topic():
    name = f"test-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    yield name
    admin.delete_topics([name])
    admin.close()


@pytest.fixture(scope="module")
def lines():
    world = World.generate(seed=11, viewers=40, movies=60)
    return list(world.events(days=1, junk_rate=0.02))


def _produce(topic: str, lines: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP, acks="all")
    for line in lines:
        key = line.split(b",", 2)[1][:32] if line.count(b",") >= 2 else None
        producer.send(topic, key=key or None, value=line)
    producer.flush()
    producer.close()


def _source(topic: str, group: str) -> KafkaSource:
    return KafkaSource(bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic, group=group)


def _offsets(topic: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
    offsets = admin.list_group_offsets(group)[group]
    admin.close()
    return {partition: meta.offset for partition, meta in offsets.items() if partition.topic == topic}


def _committed(topic: str, group: str) -> int:
    return sum(_offsets(topic, group).values())


def _state() -> tuple[int, int, int, int, int]:
    minutes = sum(Watch.objects.values_list("minutes_watched", flat=True))
    return (
        Rating.objects.count(),
        Watch.objects.count(),
        minutes,
        ObservedRecommendation.objects.count(),
        rejections_total(),
    )


def test_consumes_a_topic_and_commits_offsets_after_storing(topic, lines):
    _produce(topic, lines)
    group = f"g-{topic}"

    run = stream_consume(source=_source(topic, group), idle_seconds=3, batch_size=500)

    assert run.lines == len(lines)
    assert _committed(topic, group) == len(lines)
    assert Rating.objects.count() > 0
    assert rejections_total() > 0


def test_a_restart_mid_stream_loses_and_duplicates_nothing(topic, lines):
    _produce(topic, lines)

    stream_consume(source=_source(topic, "reference"), idle_seconds=3, batch_size=500)
    reference = _state()
    Rating.objects.all().delete()
    Watch.objects.all().delete()
    ObservedRecommendation.objects.all().delete()
    RejectedLine.objects.all().delete()

    group = f"g-{topic}"
    first = stream_consume(source=_source(topic, group), max_events=len(lines) // 3, batch_size=200)
    assert _committed(topic, group) == first.lines
    # The consumer dies after storing a batch but before committing its offsets: the next
    # consumer in the group re-reads that batch, and ingestion being idempotent, nothing doubles.
    crashing = _source(topic, group)
    crashing.commit = lambda: (_ for _ in ()).throw(RuntimeError("killed before commit"))  # type: ignore[method-assign]  # the crash under test
    with pytest.raises(RuntimeError, match="killed before commit"):
        stream_consume(source=crashing, max_events=500, batch_size=500)
    rest = stream_consume(source=_source(topic, group), idle_seconds=3, batch_size=500)

    # The crashed run's 500 lines were read again by the next consumer (they count in no total).
    assert first.lines + rest.lines == len(lines)
    assert _committed(topic, group) == len(lines)
    assert _state() == reference


def test_an_unreachable_broker_is_a_clear_error():
    with pytest.raises(SourceError, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        KafkaSource(bootstrap="127.0.0.1:1", topic="t", group="g", connect_timeout_ms=2000)


def test_reports_consumer_lag(topic, lines):
    from prometheus_client import REGISTRY

    _produce(topic, lines)

    stream_consume(source=_source(topic, f"g-{topic}"), max_events=100, batch_size=100)

    lags = [
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "recsite_stream_consumer_lag"
        for sample in metric.samples
    ]
    assert lags
    assert sum(lags) > 0


def test_partition_offsets_are_per_partition(topic, lines):
    _produce(topic, lines)
    group = f"g-{topic}"

    stream_consume(source=_source(topic, group), idle_seconds=3, batch_size=1000)

    assert set(_offsets(topic, group)) == {TopicPartition(topic, number) for number in range(3)}


def test_the_simulator_publishes_to_kafka_keyed_by_viewer(topic):
    from django.core.management import call_command

    call_command("simulate", seed=2, viewers=15, movies=25, days=1, out=f"kafka://{settings.KAFKA_BOOTSTRAP}/{topic}")

    run = stream_consume(source=_source(topic, f"g-{topic}"), idle_seconds=3)
    assert run.lines > 0
    assert run.rejected == 0
    assert Watch.objects.exists()


def test_the_topic_is_created_once_and_the_lag_counts_what_is_not_stored():
    from stream.services import stream_lag, stream_topic_ensure

    name = f"test-{uuid.uuid4().hex[:10]}"
    try:
        created = stream_topic_ensure(bootstrap=settings.KAFKA_BOOTSTRAP, topic=name, partitions=2)
        again = stream_topic_ensure(bootstrap=settings.KAFKA_BOOTSTRAP, topic=name, partitions=2)
        _produce(name, [b"2023-10-01T12:00:00,1,GET /rate/a+movie+2000=4\n"] * 5)
        before = stream_lag(bootstrap=settings.KAFKA_BOOTSTRAP, topic=name, group=f"{name}-group")
        stream_consume(
            source=KafkaSource(bootstrap=settings.KAFKA_BOOTSTRAP, topic=name, group=f"{name}-group"), max_events=5
        )
        after = stream_lag(bootstrap=settings.KAFKA_BOOTSTRAP, topic=name, group=f"{name}-group")
    finally:
        admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
        admin.delete_topics([name])
        admin.close()

    assert (created, again) == (True, False)
    assert len(before) == 2
    assert sum(before.values()) == 5
    assert after == {0: 0, 1: 0}
