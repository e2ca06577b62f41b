"""Structured logging: every line carries the id of the request or batch it belongs to.

A ``ContextVar`` holds the current context (``request_id=...`` or ``batch_id=...``); the
``ContextFilter`` copies it onto each record, so the text format prints it in brackets and the
JSON format emits it as fields. One id follows one request or one ingested batch through the logs.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

_context: ContextVar[dict[str, str]] = ContextVar("recsite_log_context", default={})  # noqa: B039
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for key, value in context.items():
            setattr(record, key, value)
        record.context = " ".join(f"{key}={value}" for key, value in context.items()) or "-"
        return True


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Adds ``values`` to every log line written inside the block."""
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)


def current_request_id() -> str:
    """The id of the request being handled (``RequestIdMiddleware`` sets it), or ``""``."""
    return _context.get().get("request_id", "")


def current_caller_request_id() -> str:
    """The ``X-Request-Id`` the caller sent with the request being handled, or ``""``."""
    return _context.get().get("caller_request_id", "")


def new_id() -> str:
    return uuid.uuid4().hex


class AllowedMethodsMiddleware:
    """Refuses HTTP methods recsite does not use, before anything else sees the request.

    Placed above django-prometheus's middleware: each new method name used to add 19 metric
    series to /metrics, so a client sending random method names grew it without bound.
    """

    ALLOWED = frozenset({"GET", "HEAD", "POST", "OPTIONS"})

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in self.ALLOWED:
            response = HttpResponse(f"method {str(request.method)[:20]!r} is not allowed", status=405)
            response["Allow"] = ", ".join(sorted(self.ALLOWED))
            return response
        return self.get_response(request)


class RequestIdMiddleware:
    """Gives each request an id of its own and returns it in ``X-Request-Id``.

    The id is always made here: a caller's ``X-Request-Id`` is not unique (five answers sent
    with one id were one provenance row), so it is kept beside ours as ``caller_request_id``
    when it is sane, for joining with the caller's logs.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = new_id()
        caller = {"caller_request_id": incoming} if _REQUEST_ID.match(incoming) else {}
        with log_context(request_id=request_id, **caller):
            response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response
