"""The training API's artifacts: adapters (lineage, files, downloads) and reward models, read by those who may
see a project's training."""

from typing import Any

from django.db.models import QuerySet
from django.http.response import HttpResponseBase
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.fields import Text
from core.lists import ListView
from core.marks import MarkField, marks_of
from training import selectors
from training.models import Adapter, RewardModel
from training.permissions import get_adapter_for_user, get_project_for_training, get_reward_model_for_user
from training.serving import serving_of
from training.views import lineage_response, stream_adapter_file


class TrainedOut(serializers.Serializer[Any]):
    """What an adapter and a reward model share: the lineage a list shows."""

    id = serializers.IntegerField()
    name = Text()
    job = serializers.IntegerField(source="job_id")
    sha256 = Text()
    size_bytes = serializers.IntegerField()
    release = serializers.IntegerField(source="release_id")
    release_hash = Text()
    base_model = serializers.IntegerField(source="base_model_id")
    base_model_hash = Text()
    config_hash = Text()
    seed = serializers.IntegerField()
    code_version = Text()
    metrics = serializers.DictField()
    created_at = serializers.DateTimeField()


class AdapterOut(TrainedOut):
    tainted = MarkField("adapter", "tainted", help_text="Set when an erasure tainted its release: which, why")


@extend_schema_view(get=extend_schema(summary="The project's adapters, newest first"))
class AdapterListView(ListView):
    serializer_class = AdapterOut

    def get_queryset(self) -> QuerySet[Adapter]:
        return selectors.adapters_of(get_project_for_training(self.request.user, self.kwargs["pk"]))


class AdapterDetailView(APIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="An adapter's lineage record: release, base model, config, seed, versions, code, hardware, metrics, "
        "and where it loads (serving: each serving target's verdict, as the serving/ resource gives it)",
    )
    def get(self, request: Request, pk: int, adapter_pk: int) -> Response:
        adapter = get_adapter_for_user(request.user, pk, adapter_pk)
        return Response(
            selectors.lineage(adapter)
            | {"tainted": marks_of("adapter", adapter.pk).get("tainted"), "serving": serving_of(adapter)}
        )


# --- Adapter downloads -----------------------------------------------------------------------------------


class AdapterFileOut(serializers.Serializer[Any]):
    index = serializers.IntegerField(help_text="Its number in the download address.")
    path = Text()
    size_bytes = serializers.IntegerField()
    sha256 = Text(help_text="Also the download's ETag.")
    download = Text(help_text="Address of the file's download.")


@extend_schema_view(
    get=extend_schema(
        summary="An adapter's files (weights, config, tokenizer) with their sizes and sha256",
        examples=[
            OpenApiExample(
                "Files",
                value={"count": 1, "next": None, "previous": None, "results": [
                    {"index": 0, "path": "adapter_model.safetensors", "size_bytes": 6815744, "sha256": "9f2c…",
                     "download": "/api/v1/projects/7/adapters/3/files/0/"}]},
                response_only=True,
            )
        ],
    )
)  # fmt: skip
class AdapterFileListView(ListView):
    serializer_class = AdapterFileOut

    def get_queryset(self) -> list[dict[str, Any]]:  # type: ignore[override]  # the adapter's file list
        adapter = get_adapter_for_user(self.request.user, self.kwargs["pk"], self.kwargs["adapter_pk"])
        return [
            {
                **entry,
                "index": index,
                "download": reverse("api_adapter_file", args=[adapter.project_id, adapter.pk, index]),
            }
            for index, entry in enumerate(adapter.files)
        ]


class AdapterFileView(APIView):
    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="Stream one file of an adapter (ETag: its sha256; If-None-Match answers 304)",
    )
    def get(self, request: Request, pk: int, adapter_pk: int, index: int) -> HttpResponseBase:
        adapter = get_adapter_for_user(request.user, pk, adapter_pk)
        return stream_adapter_file(request._request, adapter, index)


class AdapterLineageView(APIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="Download the adapter's lineage record as a JSON file (the adapter page's lineage.json)",
    )
    def get(self, request: Request, pk: int, adapter_pk: int) -> HttpResponseBase:
        return lineage_response(get_adapter_for_user(request.user, pk, adapter_pk))


# --- Reward models ---------------------------------------------------------------------------------------


class RewardModelOut(TrainedOut):
    tokenizer_hash = Text(help_text="Scoring refuses answers of a model whose tokenizer hashes otherwise")


@extend_schema_view(get=extend_schema(summary="The project's reward models, newest first"))
class RewardModelListView(ListView):
    serializer_class = RewardModelOut

    def get_queryset(self) -> QuerySet[RewardModel]:
        return selectors.reward_models_of(get_project_for_training(self.request.user, self.kwargs["pk"]))


class RewardModelDetailView(APIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="A reward model's lineage record: release, base model, tokenizer, config, seed, versions, metrics",
    )
    def get(self, request: Request, pk: int, reward_model_pk: int) -> Response:
        return Response(selectors.lineage(get_reward_model_for_user(request.user, pk, reward_model_pk)))
