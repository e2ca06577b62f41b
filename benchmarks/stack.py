"""Load on the compose stack through NGINX: ``make bench-stack``.

Sends ``GET /recommend/<viewer>`` at a fixed rate (300 per second for 5 minutes by default) to
the stack's public port with both pools serving (a canary takes its share when a release runs)
and provenance on, then prints p50, p99 and errors, each container's CPU and memory over the run
(cAdvisor through Prometheus), and the provenance rows written against the answers given, which
must be equal. Loopback only; the load is bounded in count and time.

    python benchmarks/stack.py [--rate 300] [--seconds 300]

The stack is the one ``make stack`` started (project ``recsite``, ``.env``), or another named by
``COMPOSE_PROJECT_NAME`` and ``STACK_ENV_FILE`` (the tests' runs it at a tiny size).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loadgen import LoadResult, load_run
from benchmarks.stack_client import Stack, wait_until


def containers_usage(stack: Stack, *, seconds: float) -> list[tuple[str, float, float]]:
    """(container, mean CPU cores, peak memory MB) of the stack's containers over the last ``seconds``."""
    window = f"{max(int(seconds), 15)}s"
    project = stack.project
    # This stack's containers by name: another stack on the machine (the tests') is left out.
    names = stack.compose("ps", "-a", "--format", "{{.Name}}").split()
    selector = f'name=~"{"|".join(names)}"'
    cpu = {
        sample["metric"]["name"]: float(sample["value"][1])
        for sample in stack.prometheus(
            f"sum by (name) (rate(container_cpu_usage_seconds_total{{{selector}}}[{window}]))"
        )
    }
    memory = {
        sample["metric"]["name"]: float(sample["value"][1]) / 1e6
        for sample in stack.prometheus(
            f"max by (name) (max_over_time(container_memory_working_set_bytes{{{selector}}}[{window}]))"
        )
    }
    return [(name.removeprefix(f"{project}-"), cpu.get(name, 0.0), memory.get(name, 0.0)) for name in sorted(names)]


def report(stack: Stack, result: LoadResult) -> bool:
    print(f"load: {result.summary()}")
    print(f"  answers by pool {dict(result.pools)}, by version {dict(result.versions)}")
    # cAdvisor is scraped every 5 s: the run's last samples are in Prometheus a little later.
    time.sleep(10)
    print(f"{'container':<22} {'CPU (cores)':>12} {'memory (MB)':>12}")
    for name, cores, megabytes in containers_usage(stack, seconds=result.seconds + 10):
        print(f"{name:<22} {cores:>12.2f} {megabytes:>12.0f}")
    rows = wait_until(
        lambda: (found := stack.rows_for(result.request_ids)) == len(result.request_ids) and found,
        seconds=120,
        every=3,
        what="the provenance rows of every answer",
    )
    print(f"provenance rows {rows:,} for {result.ok:,} answers: {'equal' if rows == result.ok else 'NOT EQUAL'}")
    return result.failed == 0 and rows == result.ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--viewers", type=int, default=0, help="ask for viewers 1..N (default: those the stack knows)")
    options = parser.parse_args()
    stack = Stack(
        project=os.environ.get("COMPOSE_PROJECT_NAME", "recsite"),
        env_file=Path(os.environ.get("STACK_ENV_FILE", Path(__file__).resolve().parents[1] / ".env")),
    )
    known = [row[0] for row in stack.sql("SELECT id FROM catalog_viewer ORDER BY id")]
    viewers: Sequence[int] = range(1, options.viewers + 1) if options.viewers else known
    if stack.scalar("SELECT COUNT(*) FROM releases_release WHERE state = 'canary'"):
        # The canary pool loads its version within a few seconds of the release's start.
        wait_until(
            lambda: any(
                stack.get(f"/recommend/{viewer}").headers.get("X-Release-Pool") == "canary" for viewer in range(1, 41)
            ),
            seconds=90,
            every=3,
            what="the canary pool answering through NGINX",
        )
    target = f"127.0.0.1:{stack.public_port}"
    print(f"{options.rate:.0f} requests/s for {options.seconds:.0f} s to {target}, {len(viewers):,} viewers")
    result = load_run(port=stack.public_port, rate=options.rate, seconds=options.seconds, viewers=viewers)
    return 0 if report(stack, result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
