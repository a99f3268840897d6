"""The API's front door: the index of ``/api/`` and ``/api/v1/``, the documentation page, and system health
(database, broker and, on request, a worker round trip)."""

from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http.response import HttpResponseBase
from django.urls import reverse
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.fields import Text
from core.filters import read_query
from enclave.celery import app
from enclave.tasks import health_check_task


class HealthOut(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded"])
    database = Text()
    broker = Text()
    worker = serializers.DictField(required=False, allow_null=True)


class HealthQuery(serializers.Serializer[Any]):
    worker = serializers.BooleanField(
        required=False, default=False, help_text="Also run the health task on a worker (≤ 5 s; needs a token)"
    )


class HealthView(APIView):
    permission_classes = [AllowAny]  # for load balancers and monitors: no token, and it shows no data

    @extend_schema(
        parameters=[HealthQuery],
        responses={200: HealthOut, 401: OpenApiResponse(description="`worker=true` without a token.")},
        summary="Database, broker and worker health",
    )
    def get(self, request: Request) -> Response:
        wants_worker = read_query(request, HealthQuery)["worker"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body: dict[str, Any] = {"status": "ok", "database": connection.vendor}
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            body["broker"] = "ok"
        except Exception as exc:
            body["broker"] = f"unreachable: {exc}"
            body["status"] = "degraded"
        if wants_worker and not request.user.is_authenticated:  # a task per anonymous request: not for everyone
            raise NotAuthenticated("The worker round trip needs a token; the database and broker answer without.")
        if wants_worker and body["broker"] == "ok":
            try:
                body["worker"] = health_check_task.delay().get(timeout=5)
            except CeleryTimeout:
                body["worker"] = {"status": "no worker answered within 5 s"}
                body["status"] = "degraded"
        return Response(HealthOut(body).data)


class IndexOut(serializers.Serializer[Any]):
    name = Text()
    version = Text()
    links = serializers.DictField(child=serializers.URLField())


def _links(request: Request, names: dict[str, str]) -> dict[str, str]:
    return {label: request.build_absolute_uri(reverse(name)) for label, name in names.items()}


class ApiIndexView(APIView):
    """``/api/``: where everything is. Readable without a token; it lists addresses, no data."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses=IndexOut,
        summary="Where the API's schema, documentation, version 1, health and sign-in are",
        examples=[
            OpenApiExample(
                "Index",
                value={"name": "Enclave API", "version": "1", "links": {
                    "v1": "https://enclave.bank.internal/api/v1/", "schema": "https://enclave.bank.internal/api/schema/",
                    "docs": "https://enclave.bank.internal/api/docs/",
                    "health": "https://enclave.bank.internal/api/v1/health/",
                    "sign_in": "https://enclave.bank.internal/api/v1/auth/token/"}},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        links = _links(
            request,
            {
                "v1": "api_v1",
                "schema": "api_schema",
                "docs": "api_docs",
                "health": "api_health",
                "sign_in": "api_sign_in",
            },
        )
        return Response(IndexOut({"name": "Enclave API", "version": "1", "links": links}).data)


class ApiV1IndexView(APIView):
    """``/api/v1/``: the routes a client starts from (the schema lists every route). No token needed."""

    permission_classes = [AllowAny]

    @extend_schema(responses=IndexOut, summary="The starting points of version 1 (the schema lists every route)")
    def get(self, request: Request) -> Response:
        links = _links(
            request,
            {
                "sign_in": "api_sign_in", "me": "api_me", "projects": "api_projects", "users": "api_users",
                "tokens": "api_tokens_list", "audit_events": "api_audit", "base_models": "api_base_models",
                "health": "api_health", "schema": "api_schema", "docs": "api_docs",
            },
        )  # fmt: skip
        return Response(IndexOut({"name": "Enclave API", "version": "1", "links": links}).data)


class ApiDocsView(SpectacularSwaggerSplitView):
    """The Swagger UI. It calls the API with the browser's session, so a signed-out visitor is sent to the
    login page first (and back here after it) instead of a page of 401s."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return super().get(request, *args, **kwargs)


class OpenApiYamlTextRenderer(OpenApiYamlRenderer):
    """The schema's YAML as plain text, so a browser shows it (it downloads the OpenAPI media type)."""

    media_type = "text/plain"


class ApiSchemaView(SpectacularAPIView):
    """The OpenAPI schema, readable without a token. A browser or a client that accepts anything gets YAML as
    text; ``Accept: application/vnd.oai.openapi`` (or ``+json``, ``application/json``, ``?format=json``) what it
    asks for."""

    renderer_classes = [
        OpenApiYamlTextRenderer,
        OpenApiYamlRenderer,
        OpenApiYamlRenderer2,
        OpenApiJsonRenderer,
        OpenApiJsonRenderer2,
    ]
