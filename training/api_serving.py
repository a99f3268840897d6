"""The training API's serving resources: where an adapter loads (the rules of ``training.serving``) and its merge
into the base model (ask for it, follow it, download its files)."""

from typing import Any

from django.http.response import HttpResponseBase
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_user
from core.fields import Text
from training.merging import merged_model_request
from training.models import MergedModel
from training.permissions import get_adapter_for_admin, get_adapter_for_user
from training.serving import serving_of
from training.views import stream_adapter_file
from training.views_serving import ready_merged


class SourceOut(serializers.Serializer[Any]):
    url = Text()
    version = Text(help_text="The release, commit or date of the text the rule was read from.")
    says = Text()


class TargetVerdictOut(serializers.Serializer[Any]):
    target = Text(help_text="vllm, lorax, llama_cpp or ollama")
    name = Text()
    verdict = serializers.ChoiceField(choices=["loads", "loads_with_flag", "does_not_load"])
    verdict_label = Text()
    flags = serializers.ListField(child=Text(), help_text="Server flags it needs, e.g. --max-lora-rank 64.")
    reasons = serializers.ListField(child=Text(), help_text="Why it does not load.")
    notes = serializers.ListField(child=Text(), help_text="What it loads but ignores.")
    how = Text(help_text="How the target takes an adapter.")
    sources = SourceOut(many=True)


class ServingInputsOut(serializers.Serializer[Any]):
    r = serializers.IntegerField()
    lora_alpha = serializers.FloatField()
    target_modules = serializers.ListField(child=Text())
    use_dora = serializers.BooleanField()
    modules_to_save = serializers.ListField(child=Text())
    architecture = Text()


class ServingOut(serializers.Serializer[Any]):
    note = Text(help_text="The verdicts come from documented rules, not from running the servers.")
    read_from = Text(help_text="adapter_config.json, or the job's config for a record without it.")
    inputs = ServingInputsOut()
    targets = TargetVerdictOut(many=True)


class AdapterServingView(APIView):
    @extend_schema(responses={200: ServingOut}, summary="Where the adapter loads: each serving target's verdict")
    def get(self, request: Request, pk: int, adapter_pk: int) -> Response:
        return Response(ServingOut(serving_of(get_adapter_for_user(request.user, pk, adapter_pk))).data)


class MergedFileOut(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    path = Text()
    size_bytes = serializers.IntegerField()
    sha256 = Text(help_text="Also the download's ETag.")
    download = Text()


class MergedModelOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    adapter = serializers.IntegerField(source="adapter_id")
    state = serializers.ChoiceField(choices=["queued", "running", "ready", "failed"])
    failure_reason = Text()
    sha256 = Text(help_text="Of model.safetensors, once ready.")
    size_bytes = serializers.IntegerField()
    adapter_sha256 = Text()
    base_model_hash = Text()
    requested_by = serializers.CharField(source="requested_by.username")
    requested_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    files = serializers.SerializerMethodField()

    def get_files(self, merged: MergedModel) -> list[dict[str, Any]]:
        return [
            {**entry, "index": index,
             "download": reverse("api_adapter_merged_file", args=[merged.adapter.project_id, merged.adapter_id, index])}
            for index, entry in enumerate(merged.files)
        ]  # fmt: skip


class AdapterMergedView(APIView):
    @extend_schema(
        responses={200: MergedModelOut},
        summary="The adapter merged into its base model: state, hashes, files (404 if never asked)",
    )
    def get(self, request: Request, pk: int, adapter_pk: int) -> Response:
        adapter = get_adapter_for_user(request.user, pk, adapter_pk)
        merged = MergedModel.objects.select_related("adapter", "requested_by").filter(adapter=adapter).first()
        if merged is None:
            return Response({"detail": "No merge was asked for."}, status=status.HTTP_404_NOT_FOUND)
        return Response(MergedModelOut(merged).data)

    @extend_schema(
        request=None,
        responses={202: MergedModelOut, 409: OpenApiTypes.OBJECT},
        summary="Merge the adapter into its base model on a gpu worker (idempotent while queued or ready)",
    )
    def post(self, request: Request, pk: int, adapter_pk: int) -> Response:
        adapter = get_adapter_for_admin(request.user, pk, adapter_pk)
        merged = merged_model_request(actor=request_user(request), adapter=adapter)
        return Response(MergedModelOut(merged).data, status=status.HTTP_202_ACCEPTED)


class AdapterMergedFileView(APIView):
    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="Stream one file of the merged model (ETag: its sha256; If-None-Match answers 304)",
    )
    def get(self, request: Request, pk: int, adapter_pk: int, index: int) -> HttpResponseBase:
        adapter = get_adapter_for_user(request.user, pk, adapter_pk)
        return stream_adapter_file(request._request, ready_merged(adapter.pk), index)
