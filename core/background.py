"""Background threads of a web or consumer process."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from django.conf import settings


class ProcessThread:
    """A daemon thread started on first use, once per process.

    gunicorn imports the application, then forks its workers; threads do not survive a fork, so
    each process starts its own the first time it needs it. ``SERVING_THREADS=0`` (the tests)
    starts none: the tests drive the threads' work directly.
    """

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.target = target
        self.name = name
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def ensure(self) -> None:
        if not settings.SERVING_THREADS or self._running():
            return
        with self._lock:
            if not self._running():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self.target, name=self.name, daemon=True)
                self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._thread = None

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()
