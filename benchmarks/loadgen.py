"""An open-loop load generator for recsite's public port, for the stack's fault tests and
``make bench-stack``: requests are sent at a fixed rate whatever the answers' latency (a slow
server gets the same load, as from real clients), bounded in count and time, to loopback only.

Each answer's status, latency and ``X-Request-Id`` are kept, so that a test can check that every
answer has its provenance row.
"""

from __future__ import annotations

import http.client
import ipaddress
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # Connection refused, reset or timed out: no HTTP answer at all (status 0).
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    pools: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.sent:,} requests in {self.seconds:.1f} s ({self.sent / max(self.seconds, 1e-9):.0f}/s): "
            f"{self.ok:,} answered 200, {self.failed:,} not "
            f"(statuses {dict(self.statuses)}, errors {dict(self.errors)}); "
            f"p50 {self.percentile_ms(0.5):.1f} ms, p99 {self.percentile_ms(0.99):.1f} ms"
        )


def _loopback(host: str) -> None:
    address = ipaddress.ip_address(socket.gethostbyname(host))
    if not address.is_loopback:
        raise ValueError(f"load is sent to this machine's loopback addresses only, not {host} ({address})")


class _Client(threading.local):
    connection: http.client.HTTPConnection | None = None


def load_run(
    *,
    host: str = "127.0.0.1",
    port: int,
    rate: float,
    seconds: float,
    viewers: Sequence[int] = range(1, 601),
    threads: int = 32,
    timeout: float = 10.0,
    during: list[tuple[float, Callable[[], object]]] | None = None,
    stop: threading.Event | None = None,
    seed: int = 7,
) -> LoadResult:
    """Send ``GET /recommend/<viewer>`` at ``rate`` per second for ``seconds`` (at most
    ``rate * seconds`` requests). ``during`` holds (second, callable) pairs run at those times
    from the load's start, in order, on this thread (a fault to inject under load). Setting
    ``stop`` ends the load early."""
    _loopback(host)
    if not 0 < rate <= 2000 or not 0 < seconds <= 900:
        raise ValueError("the load is bounded: at most 2,000 requests per second for 15 minutes")
    result = LoadResult()
    lock = threading.Lock()
    client = _Client()
    picker = random.Random(seed)

    def one(viewer: int) -> None:
        started = time.perf_counter()
        status, request_id, version, pool, error = 0, "", "", "", ""
        for attempt in range(2):
            try:
                if client.connection is None:
                    client.connection = http.client.HTTPConnection(host, port, timeout=timeout)
                client.connection.request("GET", f"/recommend/{viewer}")
                response = client.connection.getresponse()
                response.read()
                status = response.status
                request_id = response.getheader("X-Request-Id", "")
                version = response.getheader("X-Model-Version", "")
                pool = response.getheader("X-Release-Pool", "")
                break
            except (OSError, http.client.HTTPException) as failure:
                if client.connection is not None:
                    client.connection.close()
                client.connection = None
                error = type(failure).__name__
                # A kept-alive connection the server closed between two requests is no failed
                # request: a client opens a new one and sends it again, once.
                if attempt == 0 and isinstance(failure, http.client.RemoteDisconnected | BrokenPipeError):
                    continue
                break
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            result.statuses[status] += 1
            if status:
                result.latencies_ms.append(elapsed)
            else:
                result.errors[error] += 1
            if status == 200:
                result.request_ids.append(request_id)
                result.versions[version] += 1
                result.pools[pool] += 1

    faults = sorted(during or [], key=lambda pair: pair[0])
    total = int(rate * seconds)
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for number in range(total):
            if stop is not None and stop.is_set():
                break
            due = began + number / rate
            while faults and faults[0][0] <= due - began:
                _, action = faults.pop(0)
                action()
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(one, picker.choice(viewers))
            result.sent += 1
        for _, action in faults:
            action()
    result.seconds = time.perf_counter() - began
    return result
