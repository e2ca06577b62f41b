"""gunicorn settings for recsite's web workers (``gunicorn recsite.wsgi``; this file is read
from the working directory). Environment: ``WEB_HOST``, ``PORT``, ``WEB_CONCURRENCY``, ``ACCESS_LOG``, ``VAR_DIR``."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

bind = f"{os.environ.get('WEB_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8082')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
accesslog = os.environ.get("ACCESS_LOG") or None

# Each worker is a process with its own metrics; prometheus_client's multiprocess mode adds them
# up at /metrics. The directory must be set before any worker imports prometheus_client, and be
# this server's alone: two pools sharing VAR_DIR (compose) each wiped the other's files at start
# and reported the other's counts. Pool, host and address tell servers apart.
_server = f"{os.environ.get('SERVING_POOL', 'stable')}-{socket.gethostname()}-{bind.replace(':', '_')}"
_metrics_dir = Path(os.environ.get("VAR_DIR", Path(__file__).parent / "var")) / "prometheus" / _server
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_metrics_dir))
# One request is one thread's work: BLAS threads per worker only contend with the other
# workers for the cores (ALS's fold-in of a new history took 21.8 ms p99 with them, on 2 cores).
# Set before any worker imports numpy, which reads them once.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


def on_starting(server: Any) -> None:
    # Stale files from a previous run would be added to this run's figures.
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker: Any) -> None:
    # Rows of workers killed before they could write them (SIGKILL, out of memory) are in their
    # spool files: written now. Then the model is loaded before the first request.
    from provenance.recorder import recorder
    from serving.router import router

    try:
        recorder.recover()
    except Exception:  # the database may be away: the next worker to start tries again
        worker.log.exception("could not recover provenance rows of dead workers")
    router.refresh()


def worker_exit(server: Any, worker: Any) -> None:
    # Every answered request gets its provenance row, also when a worker stops.
    from provenance.recorder import recorder

    recorder.flush()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    # prometheus_client's multiprocess helpers carry no annotations.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
