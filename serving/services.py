"""Answering one request for recommendations, and recording what a serving host found wrong."""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from prometheus_client import Counter

from core.notifications import notification_enqueue
from serving.models import ArtifactFault
from serving.selectors import viewer_state

if TYPE_CHECKING:  # the store records its faults here: a type-only import keeps the two apart
    from serving.store import Answer, ServingModel

logger = logging.getLogger(__name__)

DEGRADED = Counter("recsite_recommend_degraded_total", "Answers given without the viewer's latest history")


class DatabaseBreaker:
    """After a failed read, this process answers without the database for a few seconds
    (``SERVING_DATABASE_RETRY_SECONDS``) before it tries again. A database that went away takes
    a connect timeout to say so; without the pause every request of the outage would wait for
    it, and a sync worker held that long leaves the requests behind it waiting too."""

    def __init__(self) -> None:
        self._closed_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self._closed_until

    def failed(self) -> None:
        self._closed_until = time.monotonic() + settings.SERVING_DATABASE_RETRY_SECONDS

    def reset(self) -> None:
        self._closed_until = 0.0


breaker = DatabaseBreaker()


def recommendation_answer(
    *, model: ServingModel, viewer_id: int, count: int, request_id: str = "", exploration_slots: int = 0
) -> Answer:
    """The list for ``viewer_id``, from their history now; ``exploration_slots`` of its last
    places go to relevant, rarely shown movies (``ServingModel.explore``)."""
    try:
        if not breaker.allows():
            raise DatabaseError("the database failed a moment ago: not asked again yet")
        state = viewer_state(viewer_id)
    except DatabaseError:
        # The database is away: answer from what the model knew at training time.
        breaker.failed()
        DEGRADED.inc()
        logger.warning("database unavailable: answering viewer %s from the model alone", viewer_id)
        answer = model.recommend(viewer_id=viewer_id, history=set(), finished=set(), demographics=None, count=count)
        answer.degraded = True
        return answer
    answer = model.recommend(
        viewer_id=viewer_id,
        history=state.history,
        finished=state.finished,
        demographics=state.demographics,
        count=count,
    )
    # An older version answering for one whose artifact is damaged: recorded as degraded.
    answer.degraded = model.stands_in_for is not None
    return model.explore(
        answer, viewer_id=viewer_id, request_id=request_id, slots=exploration_slots, finished=state.finished
    )


def artifact_fault_record(*, version_id: int, pool: str, detail: str, stand_in_id: int | None) -> ArtifactFault | None:
    """Store a damaged artifact found by this host, and tell people the first time; None when it
    was already stored (another worker of the host found it first). Raises DatabaseError when
    the database is away: the store tries again on its next refresh."""
    host = socket.gethostname()
    try:
        with transaction.atomic():
            fault = ArtifactFault.objects.create(
                model_version_id=version_id,
                host=host,
                pool=pool,
                detected_at=timezone.now(),
                detail=detail,
                stand_in_id=stand_in_id,
            )
    except IntegrityError:
        return None
    instead = f"v{fault.stand_in.version} answers instead" if fault.stand_in else "no older good artifact"
    notification_enqueue(
        subject=f"v{fault.model_version.version}'s artifact is damaged on {host}",
        body=f"{detail}\n\n{instead}; its answers are recorded as degraded. Retrain, or republish the artifact.",
    )
    return fault
