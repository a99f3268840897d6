"""REST API of scoring runs (those who read training read them; who may train starts and cancels them): list and
start a project's runs, read one with its scores summed up, and cancel one."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_user
from core.errors import DomainError
from core.fields import Text
from core.lists import ListView
from evaluation import selectors, services
from evaluation.models import GenerationRun, ScoringRun
from evaluation.permissions import (
    get_project_for_generating,
    get_project_for_generation,
    get_scoring_run_for_runner,
    get_scoring_run_for_user,
)
from evaluation.scoring_runs import MAX_BATCH_SIZE
from training.models import RewardModel


class ScoringRunIn(serializers.Serializer[Any]):
    reward_model = serializers.IntegerField(help_text="id of one of this project's reward models")
    generation_run = serializers.IntegerField(
        required=False, allow_null=True, default=None,
        help_text="id of a succeeded generation run of this project; null or left out: every candidate of the "
        "project's comparisons",
    )  # fmt: skip
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BATCH_SIZE, default=8)


class ScoringRunOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    state = Text()
    phase = Text()
    reward_model = serializers.IntegerField(source="reward_model_id")
    reward_model_sha256 = Text()
    scope = Text(help_text="generation_run or comparisons")
    generation_run = serializers.IntegerField(source="generation_run_id", allow_null=True)
    batch_size = serializers.IntegerField()
    total = serializers.IntegerField(help_text="Answers to score")
    done = serializers.IntegerField(help_text="Answers scored")
    seconds = serializers.FloatField(help_text="Time inside the forward passes")
    candidates_per_second = serializers.FloatField(allow_null=True)
    failure_reason = Text()
    worker = Text()
    created_by = Text(source="created_by.username")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)


class ScoresSummaryOut(serializers.Serializer[Any]):
    count = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True)
    stdev = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)


class ScoringRunDetailOut(ScoringRunOut):
    environment = serializers.DictField()
    scores = ScoresSummaryOut(
        source="scores_summary", help_text="The run's stored scores: how many, mean, standard deviation, range"
    )


@extend_schema_view(get=extend_schema(summary="The project's scoring runs, newest first"))
class ScoringRunListCreateView(ListView):
    serializer_class = ScoringRunOut

    def get_queryset(self) -> QuerySet[ScoringRun]:
        return selectors.scoring_runs_of(get_project_for_generation(self.request.user, self.kwargs["pk"]))

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        runs = super().filter_queryset(queryset)
        services.scoring_runs_reap()
        return runs

    @extend_schema(
        request=ScoringRunIn,
        responses={
            202: ScoringRunOut,
            400: OpenApiResponse(
                description="A generation run that has not succeeded, a reward model that reads another tokenizer "
                "than the model that wrote the answers, a bad batch size, or nothing left to score."
            ),
            404: OpenApiResponse(description="No such project (or not yours to run), reward model or generation run."),
        },
        summary="Start a scoring run (who may start training): a reward model scores a generation run's candidates "
        "or every candidate of the project's comparisons on a gpu worker; refused with the reason before anything "
        "is written",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_generating(request.user, pk)
        data = ScoringRunIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        reward_model = RewardModel.objects.filter(project=project, pk=values["reward_model"]).first()
        if reward_model is None:
            raise DomainError("No such reward model in this project.", field="reward_model", status=404)
        generation_run = None
        if values["generation_run"] is not None:
            generation_run = GenerationRun.objects.filter(project=project, pk=values["generation_run"]).first()
            if generation_run is None:
                raise DomainError("No such generation run in this project.", field="generation_run", status=404)
        run = services.scoring_run_start(
            actor=request_user(request), project=project, reward_model=reward_model, generation_run=generation_run,
            batch_size=values["batch_size"],
        )  # fmt: skip
        return Response(ScoringRunOut(run).data, status=status.HTTP_202_ACCEPTED)


class ScoringRunDetailView(APIView):
    @extend_schema(responses=ScoringRunDetailOut, summary="A scoring run: state, progress, its scores summed up")
    def get(self, request: Request, pk: int, scoring_pk: int) -> Response:
        services.scoring_runs_reap()
        run = get_scoring_run_for_user(request.user, pk, scoring_pk)
        run.scores_summary = selectors.scores_summary(run)  # type: ignore[attr-defined]
        return Response(ScoringRunDetailOut(run).data)


class ScoringRunCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: ScoringRunOut, 409: OpenApiResponse(description="The run has already ended.")},
        summary="Cancel a queued or running scoring run (its stored scores are kept)",
    )
    def post(self, request: Request, pk: int, scoring_pk: int) -> Response:
        run = get_scoring_run_for_runner(request.user, pk, scoring_pk)
        return Response(ScoringRunOut(services.scoring_run_cancel(actor=request_user(request), run=run)).data)
