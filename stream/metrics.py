"""Prometheus metrics of the stream consumer (served on its own port, see ``consume_stream``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_INGESTED = Counter("recsite_stream_events_total", "Stream events ingested, by kind", ["kind"])
LINES_REJECTED = Counter("recsite_stream_rejected_total", "Stream lines rejected, by reason", ["reason"])
BATCH_SECONDS = Histogram(
    "recsite_stream_batch_seconds",
    "Time to write one batch to the database",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_FAILURES = Counter("recsite_stream_batch_failures_total", "Batches that failed to write and were retried")
BATCH_LOCK_CONFLICTS = Counter(
    "recsite_stream_batch_lock_conflicts_total",
    "Batch writes rolled back by a deadlock or lock wait with another consumer, and run again",
)
CONSUMER_LAG = Gauge("recsite_stream_consumer_lag", "Messages behind the end of the Kafka topic", ["partition"])
COMMITS_REFUSED = Counter(
    "recsite_stream_commits_refused_total",
    "Offset commits Kafka refused because the group rebalanced while the batch was stored",
)
