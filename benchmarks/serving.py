"""Serving speed: /recommend under gunicorn against a model trained on a large simulated world,
next to /healthz on the same server, and next to a naive server that calls scikit-surprise's
``predict()`` for every candidate movie.

    .venv/bin/python benchmarks/serving.py [--viewers 6000] [--movies 4000] [--rate 200] [--seconds 20]

It builds everything in a scratch directory (SQLite database, stream, snapshot, model), starts
gunicorn with two workers on 127.0.0.1, and prints for each run p50, p95 and p99 latency (from
each request's scheduled send time, so queueing counts), achieved requests per second and errors.
Provenance recording stays on; the script checks afterwards that every answer has its row.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PORT = 18182


def scratch_environment(scratch: Path, **settings: str) -> dict[str, str]:
    """The environment of a recsite whose database, data, models and DVC remote all live in
    ``scratch`` (a benchmark's own, never the developer's ``var/``)."""
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{scratch}/recsite.sqlite3",
        "DATA_DIR": str(scratch / "data"),
        "MODEL_DIR": str(scratch / "models"),
        "DVC_REMOTE": str(scratch / "dvc-remote"),
        "VAR_DIR": str(scratch / "var"),
        "LOG_LEVEL": "WARNING",
        **settings,
    }


def _run(env: dict[str, str], *args: str) -> None:
    started = time.perf_counter()
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"  manage.py {' '.join(args)[:70]} ({time.perf_counter() - started:.0f}s)", flush=True)


def _get(path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _start_server(env: dict[str, str], urlconf: str | None = None) -> subprocess.Popen[bytes]:
    server_env = {**env, "PORT": str(PORT), "WEB_CONCURRENCY": "2"}
    if urlconf:
        server_env["ROOT_URLCONF"] = urlconf
    process = subprocess.Popen(
        [str(Path(PYTHON).parent / "gunicorn"), "recsite.wsgi", "--timeout", "120"],
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if _get("/readyz", timeout=2)[0] == 200:
                # Both workers load the model; give the second one its turn.
                for _ in range(20):
                    _get("/readyz", timeout=60)
                return process
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("the server did not become ready")


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def _open_loop(paths: list[str], rate: float, seconds: float) -> dict[str, float]:
    """Send ``rate`` requests per second for ``seconds``, whatever the server's pace."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def one(index: int) -> None:
        nonlocal errors
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            status, _ = _get(paths[index % len(paths)])
            ok = status == 200
        except OSError:
            ok = False
        elapsed = time.perf_counter() - scheduled
        with lock:
            latencies.append(elapsed)
            errors += 0 if ok else 1

    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(total)))
    duration = time.perf_counter() - start
    return _summary(latencies, errors, duration)


def _closed_loop(paths: list[str], concurrency: int, seconds: float) -> dict[str, float]:
    """As many requests as the server takes, ``concurrency`` at a time."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        nonlocal errors
        index = offset
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            try:
                ok = _get(paths[index % len(paths)])[0] == 200
            except OSError:
                ok = False
            with lock:
                latencies.append(time.perf_counter() - sent)
                errors += 0 if ok else 1
            index += concurrency

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _summary(latencies, errors, time.perf_counter() - started)


def _summary(latencies: list[float], errors: int, duration: float) -> dict[str, float]:
    ordered = sorted(latencies)

    def pct(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else float("nan")

    return {
        "requests": len(ordered),
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(ordered) * 1000 if ordered else float("nan"),
        "rps": len(ordered) / duration,
        "errors": errors,
    }


def _print(label: str, figures: dict[str, float]) -> None:
    print(
        f"{label:<44} p50 {figures['p50']:7.2f} ms  p95 {figures['p95']:7.2f} ms  p99 {figures['p99']:8.2f} ms  "
        f"{figures['rps']:7.1f} req/s  {figures['requests']:6.0f} requests  {figures['errors']:.0f} errors",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=6000)
    parser.add_argument("--movies", type=int, default=4000)
    parser.add_argument("--sessions", type=float, default=5.0, help="sessions per viewer in the simulated stream")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--scratch", type=Path, help="reuse a directory a --keep run built")
    args = parser.parse_args()

    reuse = args.scratch is not None
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="recsite-serving-bench-"))
    env = {
        **os.environ,
        "VAR_DIR": str(scratch),
        "DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}",
        "LOG_LEVEL": "warning",
        "NOTIFY_EMAILS": "",
        "SERVING_REFRESH_SECONDS": "60",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if not reuse:
        print(f"building a world of {args.viewers:,} viewers and {args.movies:,} movies in {scratch}", flush=True)
        _run(env, "migrate", "--no-input", "-v", "0")
        stream = scratch / "stream.log"
        world = scratch / "world"
        _run(env, "simulate", "--viewers", str(args.viewers), "--movies", str(args.movies),
             "--sessions-per-viewer", str(args.sessions), "--out", str(stream), "--world-out", str(world))  # fmt: skip
        _run(env, "import_movielens", str(world))
        _run(env, "consume_stream", "--source", f"file:{stream}")
        _run(env, "train")

    import sqlite3

    database = sqlite3.connect(scratch / "bench.sqlite3")
    known = [row[0] for row in database.execute("SELECT DISTINCT viewer_id FROM catalog_watch")]
    database.close()
    rng = random.Random(1)
    # Mostly known viewers, some the model has never seen (cold start), as on the platform.
    paths = [
        f"/recommend/{rng.choice(known) if rng.random() < 0.9 else rng.randrange(10**8, 2 * 10**8)}"
        for _ in range(5000)
    ]
    # An artifact is a directory of .npy files and its manifest (recommender/artifacts.py).
    artifact = max((scratch / "models").glob("v*/manifest.json"), key=lambda path: path.stat().st_mtime).parent
    size = sum(file.stat().st_size for file in artifact.iterdir())
    print(f"model artifact {artifact.name}: {size / 1e6:.1f} MB\n", flush=True)

    server = _start_server(env)
    try:
        _print(f"/recommend open loop at {args.rate:.0f} req/s", _open_loop(paths, args.rate, args.seconds))
        health = _closed_loop(["/healthz"], 4, args.seconds / 2)
        recommend = _closed_loop(paths, 4, args.seconds / 2)
        _print("/healthz as fast as it goes (4 clients)", health)
        _print("/recommend as fast as it goes (4 clients)", recommend)
        print(f"{'':<44} /recommend throughput = {recommend['rps'] / health['rps']:.2f} of /healthz", flush=True)
    finally:
        _stop_server(server)

    database = sqlite3.connect(scratch / "bench.sqlite3")
    rows = database.execute("SELECT COUNT(*) FROM provenance_recommendation").fetchone()[0]
    database.close()
    print(f"provenance rows written: {rows:,} (one per answered request, flushed at shutdown)\n", flush=True)

    if not args.no_naive:
        server = _start_server(
            {**env, "NAIVE_SNAPSHOT_DIR": str(scratch / "data" / "snapshots")}, "benchmarks.naive_urls"
        )
        try:
            naive = _open_loop(paths, args.rate, args.seconds)
            _print(f"naive predict() loop, open loop at {args.rate:.0f} req/s", naive)
            naive_max = _closed_loop(paths, 4, args.seconds / 2)
            _print("naive predict() loop as fast as it goes", naive_max)
            print(
                f"{'':<44} recsite serves {recommend['rps'] / naive_max['rps']:.0f}x the naive throughput", flush=True
            )
        finally:
            _stop_server(server)
    if not args.keep and not reuse:
        subprocess.run(["rm", "-rf", str(scratch)], check=False)


if __name__ == "__main__":
    main()
