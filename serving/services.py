"""Answering one request for recommendations."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import DatabaseError
from prometheus_client import Counter

from serving.selectors import viewer_state
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
    return model.explore(
        answer, viewer_id=viewer_id, request_id=request_id, slots=exploration_slots, finished=state.finished
    )
