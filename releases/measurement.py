"""Measuring the two pools of a release over a window: the figures the canary analysis judges.

Requests, success rate and latency come from Prometheus when ``PROMETHEUS_URL`` is set, else
from the provenance table; the share of answers followed by a watch of a recommended movie comes
from the stream, joined in the database. The decision itself is ``releases.analysis``.
"""

from __future__ import annotations

import json
import math
import urllib.request
from datetime import datetime, timedelta
from urllib.parse import urlencode

import numpy as np
from django.conf import settings

from provenance.models import Recommendation
from provenance.selectors import answers_followed, served_answers
from releases.analysis import Measurement


class MeasurementError(Exception):
    """A source of figures (Prometheus) that did not answer."""


def measure_pool(*, pool: str, start: datetime, end: datetime, follow_window: timedelta | None = None) -> Measurement:
    """One pool over [start, end): requests, success rate and latency (from Prometheus when
    ``PROMETHEUS_URL`` is set, else from the provenance table), and the share of its answers
    followed by a watch of a recommended movie within ``FAIRNESS_FOLLOW_HOURS`` (the stream,
    joined in the database; the served fairness report follows answers the same way)."""
    if follow_window is None:
        follow_window = timedelta(hours=settings.FAIRNESS_FOLLOW_HOURS)
    follow_rate, samples = _follow_rate(
        pool=pool, start=start - follow_window, end=end - follow_window, window=follow_window
    )
    if settings.PROMETHEUS_URL:
        requests, success_rate, p99_ms, mean_ms = _prometheus_figures(pool=pool, start=start, end=end)
    else:
        requests, success_rate, p99_ms, mean_ms = _provenance_figures(pool=pool, start=start, end=end)
    return Measurement(
        requests=requests,
        success_rate=success_rate,
        p99_ms=p99_ms,
        mean_ms=mean_ms,
        follow_rate=follow_rate,
        follow_samples=samples,
    )


def _provenance_figures(
    *, pool: str, start: datetime, end: datetime
) -> tuple[int, float | None, float | None, float | None]:
    rows = list(
        Recommendation.objects.filter(pool=pool, served_at__gte=start, served_at__lt=end).values_list(
            "status", "latency_ms"
        )
    )
    if not rows:
        return 0, None, None, None
    statuses = np.array([status for status, _ in rows])
    latencies = np.array([latency for _, latency in rows], dtype=np.float64)
    return (
        len(rows),
        round(float((statuses < 500).mean()), 5),
        round(float(np.percentile(latencies, 99)), 3),
        round(float(latencies.mean()), 3),
    )


def _prometheus_figures(
    *, pool: str, start: datetime, end: datetime
) -> tuple[int, float | None, float | None, float | None]:
    """The same figures from the labelled /recommend metrics, through Prometheus' HTTP API."""
    window = f"{max(int((end - start).total_seconds()), 1)}s"
    selector = f'pool="{pool}"'
    # Answers are 2xx and 5xx: a 400 refused a malformed id and says nothing of the model, as in
    # the provenance figures (which record only answers).
    total = _prometheus_scalar(
        f'sum(increase(recsite_recommend_requests_total{{{selector},status=~"2..|5.."}}[{window}]))', end
    )
    if not total:
        return 0, None, None, None
    failed = _prometheus_scalar(
        f'sum(increase(recsite_recommend_requests_total{{{selector},status=~"5.."}}[{window}]))', end
    )
    buckets = f"sum by (le) (rate(recsite_recommend_latency_seconds_bucket{{{selector}}}[{window}]))"
    p99 = _prometheus_scalar(f"histogram_quantile(0.99, {buckets})", end)
    mean = _prometheus_scalar(
        f"sum(rate(recsite_recommend_latency_seconds_sum{{{selector}}}[{window}]))"
        f" / sum(rate(recsite_recommend_latency_seconds_count{{{selector}}}[{window}]))",
        end,
    )
    return (
        round(total),
        round(1 - (failed or 0.0) / total, 5),
        round(p99 * 1000, 3) if p99 is not None else None,
        round(mean * 1000, 3) if mean is not None else None,
    )


def _prometheus_scalar(query: str, at: datetime) -> float | None:
    url = f"{settings.PROMETHEUS_URL.rstrip('/')}/api/v1/query?" + urlencode({"query": query, "time": at.timestamp()})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            payload = json.load(response)
    except (OSError, ValueError) as error:
        raise MeasurementError(f"Prometheus at {settings.PROMETHEUS_URL} did not answer: {error}") from error
    results = payload.get("data", {}).get("result", [])
    if payload.get("status") != "success" or not results:
        return None
    value = float(results[0]["value"][1])
    return value if math.isfinite(value) else None


def _follow_rate(*, pool: str, start: datetime, end: datetime, window: timedelta) -> tuple[float | None, int]:
    answers = served_answers(start=start, end=end, pool=pool)
    if not len(answers):
        return None, 0
    followed = answers_followed(answers, within=window)
    return round(float(followed.mean()), 5), len(answers)
