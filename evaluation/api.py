"""REST API of generation runs: list and start a project's runs, read one, page through its candidates (scrubbed,
each with its provenance), and cancel one."""

import json
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_user
from core.errors import DomainError
from core.fields import FormId, Text
from core.lists import ListView
from evaluation import selectors, services
from evaluation.models import Candidate, GenerationRun, PromptSource
from evaluation.permissions import (
    get_project_for_generating,
    get_project_for_generation,
    get_run_for_runner,
    get_run_for_user,
)
from evaluation.prompts import MAX_PROMPTS, UPLOAD_FORMATS
from releases.models import Release
from training.models import Adapter, BaseModel


class GenerationRunIn(serializers.Serializer[Any]):
    base_model = serializers.IntegerField(help_text="id of a ready base model")
    adapter = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="id of one of this project's adapters (optional)"
    )
    source = serializers.ChoiceField(  # type: ignore[assignment]  # the field's name, not Field.source
        choices=[choice for choice in PromptSource.choices if choice[0] != PromptSource.UPLOAD],
        help_text="A prompt file is uploaded as multipart/form-data instead.",
    )
    release = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="release_eval: id")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PROMPTS, allow_null=True, default=None)
    decoding = serializers.DictField(
        required=False,
        default=dict,
        help_text="candidates, temperature, top_p, max_new_tokens, seed, batch_size (defaults: 1, 0, 1, 128, 42, 8)",
    )


class GenerationRunUploadIn(serializers.Serializer[Any]):
    """A run on an uploaded prompt file (multipart): the decoding settings as a JSON object in a text field."""

    base_model = serializers.IntegerField(help_text="id of a ready base model")
    adapter = FormId(help_text="id of one of this project's adapters (optional)")
    file = serializers.FileField(allow_empty_file=True, help_text="JSONL, one conversation per line")
    fmt = serializers.ChoiceField(choices=[f.value for f in UPLOAD_FORMATS], required=False, default="chat_jsonl")
    decoding = serializers.CharField(
        required=False, allow_blank=True, default="", help_text='JSON object, e.g. {"max_new_tokens": 64}'
    )


class GenerationRunOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    state = Text()
    phase = Text()
    base_model = serializers.IntegerField(source="base_model_id")
    base_model_hash = Text()
    adapter = serializers.IntegerField(source="adapter_id", allow_null=True)
    adapter_sha256 = Text()
    source = Text()  # type: ignore[assignment]  # the field's name, not Field.source
    release = serializers.IntegerField(source="release_id", allow_null=True)
    source_name = Text()
    decoding = serializers.DictField()
    evaluation = serializers.IntegerField(source="evaluation_id", allow_null=True)
    prompt_count = serializers.IntegerField()
    prompts_done = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    generation_seconds = serializers.FloatField()
    tokens_per_second = serializers.FloatField(allow_null=True)
    scrub_counts = serializers.DictField(child=serializers.IntegerField())
    scrubbed_values = serializers.IntegerField()
    code_version = Text()
    failure_reason = Text()
    worker = Text()
    created_by = Text(source="created_by.username")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)


class GenerationRunDetailOut(GenerationRunOut):
    environment = serializers.DictField()


class CandidateOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    prompt_index = serializers.IntegerField(source="prompt.index")
    prompt_external_id = Text(source="prompt.external_id")
    messages = serializers.ListField(child=serializers.DictField(), source="prompt.messages")
    sample = serializers.IntegerField()
    text = Text(help_text="The answer, after the project's PII scrubber.")
    scrub_counts = serializers.DictField(child=serializers.IntegerField())
    finish_reason = Text()
    provenance = serializers.SerializerMethodField()

    def get_provenance(self, candidate: Candidate) -> dict[str, Any]:
        run = candidate.run
        return {
            "base_model_hash": run.base_model_hash,
            "adapter_sha256": run.adapter_sha256,
            "decoding": run.decoding,
            "seed": candidate.seed,
            "code_version": run.code_version,
            "prompt_tokens": candidate.prompt_tokens,
            "completion_tokens": candidate.completion_tokens,
            "seconds": candidate.seconds,
        }


@extend_schema_view(get=extend_schema(summary="The project's generation runs, newest first"))
class GenerationRunListCreateView(ListView):
    serializer_class = GenerationRunOut
    parser_classes = [JSONParser, MultiPartParser, FormParser]  # an uploaded prompt file comes as multipart

    def get_queryset(self) -> QuerySet[GenerationRun]:
        return selectors.runs_of(get_project_for_generation(self.request.user, self.kwargs["pk"]))

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        runs = super().filter_queryset(queryset)
        services.generation_runs_reap()
        return runs

    @extend_schema(
        request={"application/json": GenerationRunIn, "multipart/form-data": GenerationRunUploadIn},
        responses={
            202: GenerationRunOut,
            400: OpenApiResponse(description="A policy that cannot generate, bad decoding, or an unusable file."),
            404: OpenApiResponse(description="No such project (or not yours to run), base model, adapter or release."),
        },
        summary="Start a generation run (who may start training) on a release's held-out split or the project's "
        "imported items (JSON), or on an uploaded prompt file (multipart); refused with the reason before anything "
        "is written",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_generating(request.user, pk)
        uploading = (request.content_type or "").startswith("multipart/")
        data = (GenerationRunUploadIn if uploading else GenerationRunIn)(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        base_model = BaseModel.objects.filter(pk=values["base_model"]).first()
        if base_model is None:
            raise DomainError("No such base model.", field="base_model", status=404)
        adapter = None
        if values["adapter"] is not None:
            adapter = Adapter.objects.filter(project=project, pk=values["adapter"]).first()
            if adapter is None:
                raise DomainError("No such adapter in this project.", field="adapter", status=404)
        if uploading:
            upload = values["file"]
            run = services.generation_run_start(
                actor=request_user(request), project=project, base_model=base_model, adapter=adapter,
                source=PromptSource.UPLOAD, decoding=_decoding_text(values["decoding"]), upload=upload,
                fmt=values["fmt"], source_name=upload.name or "",
            )  # fmt: skip
            return Response(GenerationRunOut(run).data, status=status.HTTP_202_ACCEPTED)
        release = None
        if values["release"] is not None:
            release = Release.objects.filter(project=project, pk=values["release"]).first()
            if release is None:
                raise DomainError("No such release in this project.", field="release", status=404)
        run = services.generation_run_start(
            actor=request_user(request), project=project, base_model=base_model, adapter=adapter,
            source=values["source"], decoding=values["decoding"], release=release, limit=values["limit"],
        )  # fmt: skip
        return Response(GenerationRunOut(run).data, status=status.HTTP_202_ACCEPTED)


def _decoding_text(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        decoding = json.loads(text)
    except ValueError:
        decoding = None
    if not isinstance(decoding, dict):
        raise DomainError("decoding is a JSON object of settings.", field="decoding")
    return decoding


class GenerationRunDetailView(APIView):
    @extend_schema(responses=GenerationRunDetailOut, summary="A generation run: state, progress, provenance")
    def get(self, request: Request, pk: int, run_pk: int) -> Response:
        services.generation_runs_reap()
        return Response(GenerationRunDetailOut(get_run_for_user(request.user, pk, run_pk)).data)


@extend_schema_view(
    get=extend_schema(summary="A run's candidates (scrubbed), in prompt order, each with its provenance")
)
class CandidateListView(ListView):
    serializer_class = CandidateOut

    def get_queryset(self) -> QuerySet[Candidate]:
        run = get_run_for_user(self.request.user, self.kwargs["pk"], self.kwargs["run_pk"])
        return selectors.candidates_of(run).select_related("run")


class GenerationRunCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: GenerationRunOut, 409: OpenApiResponse(description="The run has already ended.")},
        summary="Cancel a queued or running generation run (its stored answers are kept)",
    )
    def post(self, request: Request, pk: int, run_pk: int) -> Response:
        run = get_run_for_runner(request.user, pk, run_pk)
        return Response(GenerationRunOut(services.generation_run_cancel(actor=request_user(request), run=run)).data)
