"""System health over the API: database, broker and (on request) a worker round trip."""

from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.db import connection
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enclave.celery import app
from enclave.tasks import health_check


class HealthOut(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded"])
    database = serializers.CharField()
    broker = serializers.CharField()
    worker = serializers.DictField(required=False, allow_null=True)


class HealthView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("worker", bool, description="Also run the health task on a worker (≤ 5 s)")],
        responses=HealthOut,
        summary="Database, broker and worker health",
    )
    def get(self, request: Request) -> Response:
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
        if request.query_params.get("worker") in {"1", "true"} and body["broker"] == "ok":
            try:
                body["worker"] = health_check.delay().get(timeout=5)
            except CeleryTimeout:
                body["worker"] = {"status": "no worker answered within 5 s"}
                body["status"] = "degraded"
        return Response(HealthOut(body).data)
