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


def new_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives each request an id (the caller's ``X-Request-Id`` when it is sane) and returns it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else new_id()
        with log_context(request_id=request_id):
            response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response
