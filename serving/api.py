"""The serving API: ``GET /recommend/<user_id>``, and the load balancer's probes."""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from prometheus_client import Counter, Histogram
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.identifiers import MAX_VIEWER_ID
from core.logcontext import current_request_id
from provenance.models import Recommendation
from provenance.services import recommendation_record
from serving.router import router
from serving.services import recommendation_answer
from serving.store import ServingModel

REQUESTS = Counter("recsite_recommend_requests_total", "Answers to /recommend", ["model_version", "pool", "status"])
LATENCY = Histogram(
    "recsite_recommend_latency_seconds",
    "Time to answer /recommend, in the worker",
    ["model_version", "pool", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
HOST = f"{socket.gethostname()}:{os.getpid()}"
logger = logging.getLogger(__name__)


class PlainTextRenderer(BaseRenderer):
    """The platform's contract: one line, movie ids separated by commas (or the error)."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(
        self, data: object, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        if isinstance(data, dict) and "items" in data:
            return ",".join(data["items"]).encode()
        if isinstance(data, dict) and "detail" in data:
            return str(data["detail"]).replace("\n", " ").encode()
        return str(data).replace("\n", " ").encode()


class ViewerIdField(serializers.Field[int, str, int, int]):
    """The platform's user id: a positive whole number that fits the viewer table.

    A single field rather than a Serializer: a Serializer deep-copies its fields on every
    instantiation, a tenth of a millisecond on the hottest path.
    """

    def to_internal_value(self, data: object) -> int:
        value = str(data)
        if len(value) > len(str(MAX_VIEWER_ID)):
            raise serializers.ValidationError(
                f"user id is too long ({len(value)} characters); expected a positive whole number"
            )
        if not value.isascii() or not value.isdigit() or value.startswith("0"):
            raise serializers.ValidationError(f"user id {value!r} is not a positive whole number")
        if int(value) > MAX_VIEWER_ID:
            raise serializers.ValidationError(f"user id {value} is larger than {MAX_VIEWER_ID}")
        return int(value)

    def to_representation(self, value: int) -> int:
        return value


VIEWER_ID = ViewerIdField()


class RecommendationSerializer(serializers.Serializer[dict[str, object]]):
    items = serializers.ListField(child=serializers.CharField(), help_text="movie ids, best first")
    model_version = serializers.IntegerField(allow_null=True)
    pool = serializers.CharField()
    strategy = serializers.CharField()
    explored = serializers.ListField(
        child=serializers.CharField(), help_text="those of the items placed by exploration (SERVING_EXPLORATION_SLOTS)"
    )
    request_id = serializers.CharField()


class RecommendView(APIView):
    """Up to 20 movie ids for a viewer, best first."""

    renderer_classes = [PlainTextRenderer, JSONRenderer]
    authentication_classes = ()
    permission_classes = ()

    @extend_schema(
        parameters=[
            # What ViewerIdField accepts, so a schema-valid id is never refused.
            OpenApiParameter(
                "user_id",
                {"type": "integer", "minimum": 1, "maximum": MAX_VIEWER_ID},
                OpenApiParameter.PATH,
                description=f"the platform's user id: a whole number from 1 to {MAX_VIEWER_ID}, no leading zeros",
            ),
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["txt", "json"],
                description="the answer's form, instead of an Accept header; any other value is a 404",
            ),
        ],
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="movie ids separated by commas"),
            (200, "application/json"): RecommendationSerializer,
            (400, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="why the id was refused"),
            (404, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="a ?format= other than txt or json"),
            (500, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="the answer failed"),
            (503, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="no model loaded yet"),
        },
    )
    def get(self, request: Request, user_id: str) -> Response:
        started = time.perf_counter()
        request_id = current_request_id()
        try:
            viewer_id = VIEWER_ID.run_validation(user_id)
        except serializers.ValidationError as invalid:
            pool, model = router.route(None)
            error = (
                " ".join(str(detail) for detail in invalid.detail)
                if isinstance(invalid.detail, list)
                else str(invalid.detail)
            )
            return self._finish(Response({"detail": error}, status=400), started, pool, model)
        pool, model = router.route(viewer_id)
        if model is None:
            return self._finish(Response({"detail": "no model is loaded yet"}, status=503), started, pool, model)

        try:
            answer = recommendation_answer(
                model=model,
                viewer_id=viewer_id,
                count=settings.SERVING_LIST_LENGTH,
                request_id=request_id,
                exploration_slots=settings.SERVING_EXPLORATION_SLOTS,
            )
        except Exception:
            # Counted and recorded as a failed answer of this pool: the canary analysis needs it.
            logger.exception("could not answer viewer %s", viewer_id)
            detail = f"internal error answering viewer {viewer_id} (request {request_id})"
            response = self._finish(Response({"detail": detail}, status=500), started, pool, model)
            self._record(request_id, viewer_id, pool, model, Recommendation.Strategy.FAILED, [], 500, started)
            return response
        if settings.SERVING_FAULT_DELAY_MS:  # test-only: a slow pool for the canary analysis to catch
            time.sleep(settings.SERVING_FAULT_DELAY_MS / 1000)
        body = {
            "items": answer.items,
            "model_version": model.version,
            "pool": pool,
            "strategy": answer.strategy,
            "explored": answer.explored,
            "request_id": request_id,
        }
        response = self._finish(Response(body), started, pool, model)
        if request.method == "GET":  # a HEAD request's body is never seen: nothing was served
            self._record(
                request_id, viewer_id, pool, model, answer.strategy, answer.items, 200, started, answer.explored,
                degraded=answer.degraded,
            )  # fmt: skip
        return response

    def _record(
        self,
        request_id: str,
        viewer_id: int,
        pool: str,
        model: ServingModel,
        strategy: str,
        items: list[str],
        status: int,
        started: float,
        explored: list[str] | None = None,
        *,
        degraded: bool = False,
    ) -> None:
        recommendation_record(
            request_id=request_id,
            viewer_id=viewer_id,
            model_version_id=model.version_id,
            pool=pool,
            strategy=strategy,
            degraded=degraded,
            items=items,
            explored=explored or [],
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            host=HOST,
        )

    def _finish(self, response: Response, started: float, pool: str, model: ServingModel | None) -> Response:
        version = str(model.version) if model else "none"
        response["X-Model-Version"] = version
        response["X-Release-Pool"] = pool
        labels = {"model_version": version, "pool": pool, "status": str(response.status_code)}
        REQUESTS.labels(**labels).inc()
        LATENCY.labels(**labels).observe(time.perf_counter() - started)
        return response


class SchemaView(SpectacularAPIView):
    """The OpenAPI description. drf-spectacular writes ``?version=`` into a response header, so a
    version with a control character (``%00``) made a response gunicorn refused: a 500."""

    @extend_schema(
        parameters=[OpenApiParameter("version", OpenApiTypes.STR, description="1 to 32 of [A-Za-z0-9._-]")],
        responses={
            (200, "application/vnd.oai.openapi"): OpenApiResponse(OpenApiTypes.OBJECT, description="this document"),
            (200, "application/vnd.oai.openapi+json"): OpenApiResponse(OpenApiTypes.OBJECT),
            (400, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="why the version was refused"),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        version = request.query_params.get("version")
        if version is not None and not _SCHEMA_VERSION.match(version):
            return HttpResponse(
                "version must be 1 to 32 letters, digits, '.', '_' or '-'", status=400, content_type="text/plain"
            )
        # drf-spectacular ships no type information.
        schema: HttpResponse = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
        return schema


_SCHEMA_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up (no database, no model): for liveness checks."""
    return HttpResponse("ok", content_type="text/plain")


def readyz(request: HttpRequest) -> HttpResponse:
    """Ready for traffic: a model is loaded and the database answers."""
    pool, model = router.route(None)
    if model is None:
        return HttpResponse("not ready: no model loaded", status=503, content_type="text/plain")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        # The error's text names hosts and users: it goes to the log, not to whoever asks.
        logger.exception("readiness check: the database did not answer")
        return HttpResponse("not ready: database unavailable", status=503, content_type="text/plain")
    response = HttpResponse(f"ready: v{model.version} ({pool})", content_type="text/plain")
    response["X-Model-Version"] = str(model.version)
    return response
