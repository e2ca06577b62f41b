"""Ingestion throughput: from a file and from Kafka into the configured database, next to the
rate of merely reading and parsing the same lines.

    DATABASE_URL=mysql://recsite:recsite@127.0.0.1:13306/recsite .venv/bin/python benchmarks/ingest.py

(``make bench-ingest`` does that with the project-local MariaDB). It writes into a scratch
database it creates and drops, never the configured one. With ``DATABASE_REPLICA_URL`` it also
prints how far the read replica fell behind during the first file pass, and how long after the
primary's last commit it had applied everything.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
os.environ.setdefault("LOG_LEVEL", "warning")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from simulator.services import simulator_publish  # noqa: E402
from simulator.world import World  # noqa: E402
from stream.parsing import parse_line  # noqa: E402
from stream.services import stream_consume  # noqa: E402
from stream.sources import FileSource, KafkaSource  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _read_and_parse(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            parse_line(line)
            count += 1
    return count, time.perf_counter() - started


def _report(label: str, lines: int, seconds: float, baseline: float | None = None) -> float:
    rate = lines / seconds
    ratio = f"  ({rate / baseline:.2f} of read-and-parse)" if baseline else ""
    print(f"{label:<38} {lines:>9,} lines in {seconds:6.2f}s = {rate:>9,.0f} events/s{ratio}")
    return rate


@contextmanager
def _replica_lag(url: str) -> Iterator[None]:
    """While the block writes on the primary: the replica's largest Seconds_Behind_Master,
    sampled every half second, and how long it takes after the block to apply all of it."""
    if not url:
        yield
        return
    import dj_database_url
    import MySQLdb

    config = dj_database_url.parse(url.replace("mariadb://", "mysql://", 1))
    replica = MySQLdb.connect(
        host=config["HOST"], port=int(config["PORT"] or 3306), user=config["USER"], password=config["PASSWORD"]
    )
    worst: list[float] = [0.0]
    done = threading.Event()

    def sample() -> None:
        watcher = MySQLdb.connect(
            host=config["HOST"], port=int(config["PORT"] or 3306), user=config["USER"], password=config["PASSWORD"]
        )
        cursor: Any = watcher.cursor(MySQLdb.cursors.DictCursor)
        while not done.wait(0.5):
            cursor.execute("SHOW REPLICA STATUS")
            lag = (cursor.fetchone() or {}).get("Seconds_Behind_Master")
            worst[0] = max(worst[0], float(lag or 0))
        watcher.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@gtid_binlog_pos")
            (position,) = cursor.fetchone()
        started = time.perf_counter()
        cursor = replica.cursor()
        cursor.execute("SELECT MASTER_GTID_WAIT(%s, 600)", [position])
        caught_up = time.perf_counter() - started
        done.set()
        sampler.join()
        replica.close()
        print(f"{'replica (during the first pass)':<38} at most {worst[0]:.0f} s behind; applied all of it")
        print(f"{'':<38} {caught_up:.2f} s after the primary's last commit")


def _consumer_groups(lines: list[bytes], *, sizes: list[int], partitions: int, baseline: float) -> None:
    """``consume_stream`` processes of one group over one topic, as production scales out: each
    size reads the whole topic as a new group into emptied tables. The rate runs from the first
    process's start (joining the group is part of it) to the last batch stored."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from stream.models import IngestRun

    topic = f"bench-group-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        simulator_publish(lines=lines, bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic)
        db = connection.settings_dict
        environment = {
            **os.environ,
            "DATABASE_URL": f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        }
        command = [
            sys.executable,
            "manage.py",
            "consume_stream",
            "--source",
            f"kafka://{settings.KAFKA_BOOTSTRAP}/{topic}",
        ]
        for size in sizes:
            with connection.cursor() as cursor:
                for table in ("catalog_rating", "catalog_watch", "stream_observedrecommendation", "stream_ingestrun"):
                    cursor.execute(f"DELETE FROM {table}")
            group = [
                *command,
                "--group",
                f"{topic}-{size}",
                "--idle-seconds",
                "5",
                "--metrics-port",
                "0",
            ]
            processes = [
                subprocess.Popen(group, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for _ in range(size)
            ]
            for process in processes:
                _, errors = process.communicate(timeout=1800)
                if process.returncode:
                    raise SystemExit(f"a consumer failed: {errors.decode(errors='replace')[-2000:]}")
            runs = list(IngestRun.objects.all())
            stored = sum(run.lines for run in runs)
            seconds = (
                max(run.updated_at or run.started_at for run in runs) - min(run.started_at for run in runs)
            ).total_seconds()
            _report(
                f"Kafka -> {connection.vendor}, {size} consumer(s), {partitions} partitions", stored, seconds, baseline
            )
    finally:
        admin.delete_topics([topic])
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=2000)
    parser.add_argument("--movies", type=int, default=1500)
    parser.add_argument("--sessions-per-viewer", type=float, default=4.0)
    parser.add_argument("--junk-rate", type=float, default=0.002)
    parser.add_argument("--no-kafka", action="store_true", help="skip the Kafka measurements")
    parser.add_argument(
        "--group-sizes", type=int, nargs="*", default=[1, 2, 3], help="consumer processes in one group, each run"
    )
    parser.add_argument("--partitions", type=int, default=6, help="of the consumer groups' topic")
    args = parser.parse_args()

    world = World.generate(seed=7, viewers=args.viewers, movies=args.movies)
    lines = list(world.events(sessions_per_viewer=args.sessions_per_viewer, junk_rate=args.junk_rate))
    path = Path(tempfile.mkdtemp(prefix="recsite-bench-")) / "stream.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    vendor = connection.vendor
    print(f"{len(lines):,} simulated lines ({args.viewers:,} viewers, {args.movies:,} movies) into {vendor}")

    count, seconds = _read_and_parse(path)
    baseline = _report("read and parse (file)", count, seconds)

    # A scratch database of its own name: a test pass on the same server uses test_<name>.
    connection.settings_dict["TEST"]["NAME"] = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        with _replica_lag(settings.DATABASE_REPLICA_URL):
            run = stream_consume(source=FileSource(str(path)))
        _report(f"file -> {vendor} (first pass)", run.lines, run.duration_seconds or 1e-9, baseline)
        run = stream_consume(source=FileSource(str(path)))
        _report(f"file -> {vendor} (replay, all duplicates)", run.lines, run.duration_seconds or 1e-9, baseline)

        if not args.no_kafka:
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            simulator_publish(lines=lines, bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic)
            _report("produce to Kafka", len(lines), time.perf_counter() - started)
            source = KafkaSource(bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic, group=f"read-{topic}")
            started = time.perf_counter()
            read = sum(len(batch) for batch in source.batches(batch_size=5000, max_lines=len(lines)))
            source.close()
            kafka_baseline = _report("read from Kafka (no parse, no write)", read, time.perf_counter() - started)
            source = KafkaSource(bootstrap=settings.KAFKA_BOOTSTRAP, topic=topic, group=f"ingest-{topic}")
            with connection.cursor() as cursor:
                for table in ("catalog_rating", "catalog_watch", "stream_observedrecommendation"):
                    cursor.execute(f"DELETE FROM {table}")
            run = stream_consume(source=source, max_events=len(lines))
            _report(f"Kafka -> {vendor}", run.lines, run.duration_seconds or 1e-9, baseline)
            share = run.lines / (run.duration_seconds or 1e-9) / kafka_baseline
            print(f"{'':<38} ({share:.2f} of reading Kafka alone)")
            _consumer_groups(lines, sizes=args.group_sizes, partitions=args.partitions, baseline=baseline)
    finally:
        teardown_databases(old_config, verbosity=0)
        path.unlink()


if __name__ == "__main__":
    main()
