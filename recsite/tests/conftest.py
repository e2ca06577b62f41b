"""The compose stack, for the tests marked ``stack`` (``make test-stack``)."""

from __future__ import annotations

import pytest

from benchmarks.stack_client import ROOT, Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The test stack, up and healthy, with a first model: started (or kept) by scripts/stack.sh,
    and on a fresh one the first day played by ``bootstrap`` at a small size."""
    stack = Stack(
        project="recsite-test",
        env_file=ROOT / ".services" / "stack-test.env",
        env_template=ROOT / "infra" / "stack-test.env",
    )
    stack.script("up", timeout=2400)
    if stack.stable_version() is None:
        # What a client gets before the first training: the pools' own 503, through NGINX.
        stack.first_answer = stack.get("/recommend/1")
        stack.script(
            "bootstrap",
            timeout=1200,
            extra={"BOOTSTRAP_VIEWERS": "300", "BOOTSTRAP_MOVIES": "200", "BOOTSTRAP_SESSIONS": "12"},
        )
    return stack
