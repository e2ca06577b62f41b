"""What a request says about where it came from."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's address: the connection's, or with ``TRUSTED_PROXY_COUNT`` proxies in front
    the one the outermost of them saw (each appends its peer to X-Forwarded-For; entries before
    those are whatever the client wrote, so they are ignored)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    remote = str(request.META.get("REMOTE_ADDR", ""))
    if not proxies:
        return remote
    hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    return hops[-proxies] if len(hops) >= proxies else remote
