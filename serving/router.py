"""Which pool and model answer a request, and keeping both current.

A background thread looks for new versions every ``SERVING_REFRESH_SECONDS`` and swaps them in
with one reference assignment, so running workers pick up a promotion without a restart and
without a failed request. The canary's weight comes from the registry, where the release
process writes it.
"""

from __future__ import annotations

import logging
import time
import zlib

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from core.background import ProcessThread
from recommender.selectors import model_version_canary_weight
from serving.store import ModelStore, ServingModel

logger = logging.getLogger(__name__)


def traffic_bucket(viewer_id: int) -> int:
    """0-99, stable for a viewer: the same viewer always lands in the same pool at a weight."""
    return zlib.crc32(viewer_id.to_bytes(8, "little")) % 100


class Router:
    """Picks the pool and model for each request, and keeps both current.

    With ``RELEASE_MODE=nginx`` NGINX splits the traffic and this process serves its own
    ``SERVING_POOL``. With ``RELEASE_MODE=embedded`` (the demo: one server, no NGINX) it holds
    stable and canary and sends a viewer to the canary when their bucket falls under the active
    release's weight. A background thread refreshes versions and weight every
    ``SERVING_REFRESH_SECONDS``; each swap is one reference assignment, so no request fails.
    """

    def __init__(self) -> None:
        self.stores = {pool: ModelStore(pool) for pool in ("stable", "canary")}
        self.canary_weight = 0
        self._watcher = ProcessThread(self._watch, "model-watcher")

    def route(self, viewer_id: int | None) -> tuple[str, ServingModel | None]:
        self._watcher.ensure()
        if settings.RELEASE_MODE == "nginx":
            store = self.stores[settings.SERVING_POOL]
            return store.pool, store.current or self._load_now(store)
        canary = self.stores["canary"].current
        if canary is not None and viewer_id is not None and traffic_bucket(viewer_id) < self.canary_weight:
            return "canary", canary
        stable = self.stores["stable"]
        return "stable", stable.current or self._load_now(stable)

    @staticmethod
    def _load_now(store: ModelStore) -> ServingModel | None:
        # Nothing loaded yet: load on the request, unless the last load failed a moment ago.
        return None if store.backing_off() else store.refresh()

    def refresh(self) -> None:
        if settings.RELEASE_MODE == "nginx":
            self.stores[settings.SERVING_POOL].refresh()
            return
        for store in self.stores.values():
            store.refresh()
        try:
            self.canary_weight = model_version_canary_weight()
        except DatabaseError:
            logger.warning("could not read the canary weight; keeping %s%%", self.canary_weight)

    def reset(self) -> None:
        """Forget every loaded model (tests; a worker would simply restart)."""
        for store in self.stores.values():
            store.reset()
        self.canary_weight = 0

    def _watch(self) -> None:
        while True:
            time.sleep(settings.SERVING_REFRESH_SECONDS)
            close_old_connections()
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any single failure
                logger.exception("model refresh failed")


router = Router()
