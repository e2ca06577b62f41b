"""Writing provenance: the row that says who was served what, by which version and pool."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from core.logcontext import current_caller_request_id
from provenance.models import Recommendation
from provenance.recorder import recorder


def recommendation_record(
    *,
    request_id: str,
    viewer_id: int,
    model_version_id: int | None,
    pool: str,
    strategy: str,
    degraded: bool = False,
    items: Sequence[str] = (),
    explored: Sequence[str] = (),
    status: int = 200,
    latency_ms: float,
    host: str,
) -> Recommendation:
    """Record one answer (or failure) as served now: queued and spooled by the recorder, never
    blocking the request on the database (see ``provenance.recorder``)."""
    row = Recommendation(
        request_id=request_id,
        caller_request_id=current_caller_request_id(),
        viewer_id=viewer_id,
        model_version_id=model_version_id,
        pool=pool,
        strategy=strategy,
        degraded=degraded,
        items=",".join(items),
        explored=",".join(explored),
        status=status,
        latency_ms=round(latency_ms, 3),
        served_at=timezone.now(),
        host=host,
    )
    recorder.record(row)
    return row
