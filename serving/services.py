"""Answering one request for recommendations."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from prometheus_client import Counter

from serving.selectors import viewer_state
from serving.store import Answer, ServingModel

logger = logging.getLogger(__name__)

DEGRADED = Counter("recsite_recommend_degraded_total", "Answers given without the viewer's latest history")


def recommendation_answer(
    *, model: ServingModel, viewer_id: int, count: int, request_id: str = "", exploration_slots: int = 0
) -> Answer:
    """The list for ``viewer_id``, from their history now; ``exploration_slots`` of its last
    places go to relevant, rarely shown movies (``ServingModel.explore``)."""
    try:
        state = viewer_state(viewer_id)
    except DatabaseError:
        # The database is away: answer from what the model knew at training time.
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
