"""The API's mapping step for another tool's file (Label Studio, Argilla, OpenAssistant): confirm which fields
hold what and who its annotators are, or cancel the import."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_user
from annotation import services
from annotation.api import IMPORT_RESPONSES, ImportOut, import_response
from annotation.permissions import get_batch_for_user


class ImportMappingIn(serializers.Serializer[None]):
    field_map = serializers.JSONField(
        required=False, default=None,
        help_text='Label Studio only: {"prompt": field, "candidates": [left, right, …], "response": field or null}. '
        "Without it, the guess in `peer_scan.field_guess`.",
    )  # fmt: skip
    annotators = serializers.DictField(
        help_text='Every annotator key in `peer_scan.annotators` mapped to a member\'s user id, "new" (a '
        'pseudonymous imported annotator that cannot sign in) or "skip" (their annotations left out).',
    )


class ImportMappingView(APIView):
    @extend_schema(
        request=ImportMappingIn,
        responses=IMPORT_RESPONSES,
        summary="Map another tool's file (fields, annotators) and import it",
        description=(
            "For an import with `status` `mapping`. Answers as an upload does: 201 imported, 202 a worker imports "
            "it, 422 refused with its errors. A wrong or incomplete mapping is refused with a 400 saying what "
            "to fix, and the import keeps waiting."
        ),
    )
    def post(self, request: Request, pk: int, batch_pk: int) -> Response:
        batch = get_batch_for_user(request.user, pk, batch_pk)
        data = ImportMappingIn(data=request.data)
        data.is_valid(raise_exception=True)
        values: dict[str, Any] = data.validated_data
        batch = services.import_mapping_confirm(
            actor=request_user(request), batch=batch, fields=values["field_map"], annotators=values["annotators"]
        )
        return import_response(request, batch)


class ImportCancelView(APIView):
    @extend_schema(
        request=None, responses=ImportOut, summary="Cancel an import waiting for its mapping (its file is deleted)"
    )
    def post(self, request: Request, pk: int, batch_pk: int) -> Response:
        batch = get_batch_for_user(request.user, pk, batch_pk)
        batch = services.import_cancel(actor=request_user(request), batch=batch)
        return Response(ImportOut(batch, context={"request": request}).data)
