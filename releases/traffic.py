"""Applying a release's weight to NGINX (``RELEASE_MODE=nginx``).

The upstream block is rendered from the running release into ``NGINX_UPSTREAMS_PATH`` and NGINX
is reloaded (``NGINX_RELOAD_COMMAND``). Weighted round robin gives the canary exactly its share
of requests; a pool at 0% becomes a ``backup`` server, so it still takes the traffic when the
other pool is down or restarting (with ``proxy_next_upstream`` in ``nginx/recsite.conf``, a
request that meets a dead pool is retried on the live one instead of failing).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from pathlib import Path

from django.conf import settings

from recommender.selectors import model_version_canary_weight

logger = logging.getLogger(__name__)


class TrafficError(Exception):
    """NGINX could not be given the new weights."""


def upstreams_render(*, canary_weight: int) -> str:
    stable, canary = settings.NGINX_STABLE_SERVERS, settings.NGINX_CANARY_SERVERS
    lines = [f"# Rendered by recsite (render_nginx): canary {canary_weight}%. Do not edit.", "upstream recsite_pools {"]
    # A weight is a server's, not its pool's: each server's weight is scaled by the other pool's
    # size, so that a pool's servers add up to its share (two stable servers at 80 and one canary
    # at 40 give the canary 20%).
    for servers, others, share in ((stable, canary, 100 - canary_weight), (canary, stable, canary_weight)):
        for server in servers:
            # NGINX weights start at 1; a pool at 0% only takes traffic when the other is down.
            weight = f"weight={share * max(len(others), 1)}" if share > 0 else "backup"
            lines.append(f"    server {server} {weight} max_fails=1 fail_timeout=2s;")
    lines += ["    keepalive 16;", "}", ""]
    return "\n".join(lines)


def traffic_apply() -> int | None:
    """Render the running release's weight for NGINX and reload it; None in embedded mode."""
    if settings.RELEASE_MODE != "nginx" or not settings.NGINX_UPSTREAMS_PATH:
        return None
    weight = model_version_canary_weight()
    path = Path(settings.NGINX_UPSTREAMS_PATH)
    text = upstreams_render(canary_weight=weight)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    if settings.NGINX_RELOAD_COMMAND:
        result = subprocess.run(shlex.split(settings.NGINX_RELOAD_COMMAND), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise TrafficError(f"nginx reload failed: {(result.stderr or result.stdout).strip()}")
    logger.info("nginx: canary at %s%% (%s)", weight, path)
    return weight
