"""Running the simulated platform: its world and its event stream, to a file or Kafka."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from simulator.world import World


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 42
    viewers: int = 500
    movies: int = 400
    sessions_per_viewer: float = 8.0
    days: float = 7.0
    junk_rate: float = 0.0

    @classmethod
    def parse(cls, text: str) -> SimulatorConfig:
        """``seed=7,viewers=300`` -> a config; unknown keys or bad numbers raise ValueError."""
        values: dict[str, float | int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, raw = item.partition("=")
            field_type = cls.__dataclass_fields__.get(key)
            if field_type is None:
                raise ValueError(f"unknown simulator option {key!r} (use {', '.join(cls.__dataclass_fields__)})")
            try:
                values[key] = float(raw) if field_type.type == "float" else int(raw)
            except ValueError:
                raise ValueError(f"simulator option {key}={raw!r} is not a number") from None
        return cls(**values)  # type: ignore[arg-type]


def simulator_world(config: SimulatorConfig) -> World:
    return World.generate(seed=config.seed, viewers=config.viewers, movies=config.movies)


def simulator_events(world: World, config: SimulatorConfig) -> Iterable[bytes]:
    return world.events(sessions_per_viewer=config.sessions_per_viewer, days=config.days, junk_rate=config.junk_rate)


def simulator_write(*, lines: Iterable[bytes], out: BinaryIO, on_line: Callable[[], None] | None = None) -> int:
    count = 0
    for line in lines:
        out.write(line + b"\n")
        count += 1
        if on_line and count % 10_000 == 0:
            on_line()
    return count


def simulator_publish(
    *, lines: Iterable[bytes], bootstrap: str, topic: str, on_line: Callable[[], None] | None = None
) -> int:
    """Send lines to a Kafka topic, keyed by viewer id so one viewer's events stay in order on
    one partition (and so one consumer folds a viewer's watch minutes)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","), linger_ms=20, batch_size=256 * 1024, acks="all", retries=5
    )
    count = 0
    try:
        for line in lines:
            key = line.split(b",", 2)[1] if line.count(b",") >= 2 else b""
            producer.send(topic, key=key[:32] or None, value=line)
            count += 1
            if on_line and count % 10_000 == 0:
                on_line()
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return count
