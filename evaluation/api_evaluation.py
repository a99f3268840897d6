"""REST API of the evaluation app: a project's blind evaluations (list, start), one with its live results, and
Finish, which freezes them."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user
from core.errors import DomainError
from core.fields import Text
from core.lists import ListView
from evaluation import selectors, services
from evaluation.judging import AGAINST_KINDS
from evaluation.models import Evaluation, PromptSource
from evaluation.permissions import get_evaluation_for_runner, get_evaluation_for_user, get_project_for_evaluations
from releases.models import Release
from training.models import Adapter


class SideIn(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=list(AGAINST_KINDS))
    base_model = serializers.IntegerField(
        required=False, allow_null=True, help_text="base_model: empty for the adapter's own"
    )
    adapter = serializers.IntegerField(required=False, help_text="kind adapter: an adapter of this project")
    target = serializers.IntegerField(required=False, help_text="kind deployment_target: its current model")


class PromptIn(serializers.Serializer[Any]):
    messages = serializers.ListField(child=serializers.DictField(), min_length=1)
    metadata = serializers.DictField(required=False, default=dict)
    external_id = Text(required=False, allow_blank=True, default="")


class EvaluationIn(serializers.Serializer[Any]):
    name = Text(max_length=200, required=False, allow_blank=True, default="")
    adapter = serializers.IntegerField(help_text="id of the adapter under evaluation (system 0)")
    against = SideIn()
    extra = SideIn(many=True, required=False, default=list, help_text="more systems, for a ranking of three or more")
    source = serializers.ChoiceField(choices=PromptSource.values)  # type: ignore[assignment]  # DRF's Field.source
    release = serializers.IntegerField(required=False, allow_null=True, help_text="source release_eval: its eval split")
    prompts = PromptIn(many=True, required=False, help_text="source upload: the prompts")
    source_name = Text(max_length=255, required=False, allow_blank=True, default="")
    decoding = serializers.DictField(
        required=False, default=dict, help_text="temperature, top_p, max_new_tokens, seed, batch_size (one answer each)"
    )


class SystemOut(serializers.Serializer[Any]):
    position = serializers.IntegerField()
    label = Text()  # type: ignore[assignment]  # DRF's Field.label
    base_model = serializers.IntegerField(source="base_model_id")
    adapter = serializers.IntegerField(source="adapter_id", allow_null=True)
    run = serializers.IntegerField(source="run_id", allow_null=True)
    run_state = serializers.SerializerMethodField()
    prompts_done = serializers.SerializerMethodField()

    def get_run_state(self, system: Any) -> str:
        return system.run.state if system.run_id else ""

    def get_prompts_done(self, system: Any) -> int:
        return system.run.prompts_done if system.run_id else 0


class EvaluationOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = Text()
    state = Text()
    failure_reason = Text()
    source = Text()  # type: ignore[assignment]  # DRF's Field.source
    release = serializers.IntegerField(source="release_id", allow_null=True)
    deployment_target = serializers.IntegerField(source="deployment_target_id", allow_null=True)
    judging_project = serializers.IntegerField(source="judging_project_id", allow_null=True)
    prompt_count = serializers.IntegerField()
    identical_answers = serializers.IntegerField(
        help_text="Prompts left out of the judging: two systems gave the same answer, so there was nothing to judge."
    )
    decoding = serializers.DictField()
    created_by = Text(source="created_by.username")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class EvaluationDetailOut(EvaluationOut):
    systems = serializers.SerializerMethodField()
    results = serializers.SerializerMethodField(
        help_text="Frozen once finished, live while judged, null before: method, confidence, judgements, prompts, "
        "head_to_head (system 0's wins/ties/losses against each system, win_rate = (wins + ties/2)/n with its "
        "Wilson interval, conclusive), per_criterion, per_annotator, per_metadata, ranking (three or more systems)."
    )

    def get_systems(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        return list(SystemOut(selectors.systems_of(evaluation), many=True).data)

    def get_results(self, evaluation: Evaluation) -> dict[str, Any] | None:
        return selectors.figures_of(evaluation)


@extend_schema_view(get=extend_schema(summary="The project's blind evaluations, newest first"))
class EvaluationListCreateView(ListView):
    serializer_class = EvaluationOut
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[Evaluation]:
        return selectors.evaluations_of(get_project_for_evaluations(self.request.user, self.kwargs["pk"]))

    @extend_schema(
        request=EvaluationIn,
        responses={
            202: EvaluationDetailOut,
            400: OpenApiResponse(description="Refused, nothing written: e.g. prompts in a training split."),
            404: OpenApiResponse(description="No such project (or not yours to evaluate in), adapter or release."),
        },
        summary="Evaluate an adapter against another model, blind (project admins): one generation run per side",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.RUN_TRAINING)
        data = EvaluationIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        adapter = Adapter.objects.filter(project=project, pk=values["adapter"]).select_related("base_model").first()
        if adapter is None:
            raise DomainError("No such adapter in this project.", field="adapter", status=404)
        release = None
        if values.get("release") is not None:
            release = Release.objects.filter(project=project, pk=values["release"]).first()
            if release is None:
                raise DomainError("No such release in this project.", field="release", status=404)
        evaluation = services.evaluation_start(
            actor=request_user(request),
            project=project,
            adapter=adapter,
            against=dict(values["against"]),
            extra=[dict(side) for side in values["extra"]],
            source=values["source"],
            release=release,
            prompts=[dict(p) for p in values.get("prompts") or []],
            source_name=values["source_name"],
            decoding=values["decoding"],
            name=values["name"],
        )
        return Response(EvaluationDetailOut(evaluation).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailView(APIView):
    @extend_schema(
        responses=EvaluationDetailOut, summary="An evaluation: its systems, their runs and the results with intervals"
    )
    def get(self, request: Request, pk: int, evaluation_pk: int) -> Response:
        return Response(EvaluationDetailOut(get_evaluation_for_user(request.user, pk, evaluation_pk)).data)


class EvaluationFinishView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: EvaluationDetailOut,
            409: OpenApiResponse(description="Not being judged, or nobody has judged a comparison yet."),
        },
        summary="Finish an evaluation (project admins): its results are frozen for the promotion gate",
    )
    def post(self, request: Request, pk: int, evaluation_pk: int) -> Response:
        evaluation = get_evaluation_for_runner(request.user, pk, evaluation_pk)
        finished = services.evaluation_finish(actor=request_user(request), evaluation=evaluation)
        return Response(EvaluationDetailOut(finished).data)
