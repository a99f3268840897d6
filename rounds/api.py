"""REST API of rounds: a project's rounds (list, start the next), one round with its counts and lineage, its
pairs (with the pair policy and reward scores: for those who read training, never annotators), building its
release early, and ending it."""

import io
import json
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_user
from core.errors import DomainError
from core.fields import Text
from core.lists import ListView
from evaluation.models import DeploymentTarget, PromptSource
from evaluation.prompts import MAX_PROMPTS
from rounds import selectors, services
from rounds.models import PairPolicy, Round, RoundPair
from rounds.permissions import (
    get_project_for_rounds,
    get_project_for_running_rounds,
    get_round_for_runner,
    get_round_for_user,
)
from training.models import RewardModel


class RoundPromptIn(serializers.Serializer[Any]):
    messages = serializers.ListField(child=serializers.DictField(), min_length=1)
    metadata = serializers.DictField(required=False, default=dict)


class RoundIn(serializers.Serializer[Any]):
    target = serializers.IntegerField(help_text="id of the deployment target whose current model answers")
    source = serializers.ChoiceField(  # type: ignore[assignment]  # DRF's Field.source
        choices=[PromptSource.UPLOAD, PromptSource.PROJECT_ITEMS],
        help_text="upload: the new prompts given in `prompts`; project_items: the project's first `limit` items",
    )
    prompts = RoundPromptIn(many=True, required=False, max_length=MAX_PROMPTS)  # type: ignore[call-arg]  # ListSerializer's
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PROMPTS)
    candidates_per_prompt = serializers.IntegerField(default=4, min_value=2, max_value=services.MAX_CANDIDATES)
    pairs_per_prompt = serializers.IntegerField(default=1, min_value=1)
    pair_policy = serializers.ChoiceField(choices=PairPolicy.values, default=PairPolicy.RANDOM)
    reward_model = serializers.IntegerField(required=False, allow_null=True)
    decoding = serializers.DictField(required=False, default=dict, help_text="temperature, top_p, max_new_tokens, seed")
    dpo_preset = Text(required=False, allow_blank=True, default="")
    dpo = serializers.DictField(required=False, default=dict, help_text="DPO options over the preset (learning_rate…)")
    eval_fraction = serializers.FloatField(default=0.2, min_value=0.01, max_value=0.5)
    min_decided = serializers.IntegerField(default=1, min_value=1)


class RoundOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    state = Text()
    failure_reason = Text()
    target = serializers.IntegerField(source="target_id")
    policy_adapter = serializers.IntegerField(source="policy_adapter_id", allow_null=True)
    candidates_per_prompt = serializers.IntegerField()
    pairs_per_prompt = serializers.IntegerField()
    pair_policy = Text()
    reward_model = serializers.IntegerField(source="reward_model_id", allow_null=True)
    decoding = serializers.DictField()
    prompt_source = Text()
    dpo_config = serializers.DictField()
    generation_run = serializers.IntegerField(source="generation_run_id", allow_null=True)
    scoring_run = serializers.IntegerField(source="scoring_run_id", allow_null=True)
    release = serializers.IntegerField(source="release_id", allow_null=True)
    training_job = serializers.IntegerField(source="training_job_id", allow_null=True)
    adapter = serializers.IntegerField(source="adapter_id", allow_null=True)
    evaluation = serializers.IntegerField(source="evaluation_id", allow_null=True)
    promotion = serializers.IntegerField(source="promotion_id", allow_null=True)
    results = serializers.DictField(help_text="evaluation: the new adapter's win rate against the target's model")
    created_by = Text(source="created_by.username")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class RoundDetailOut(RoundOut):
    counts = serializers.SerializerMethodField(
        help_text=(
            "prompts, candidates, pairs, decided; once the release is built, released_train, released_eval and "
            "left_out (decided pairs that make no preference: even splits, ties)"
        )
    )
    lineage = serializers.SerializerMethodField()

    def get_counts(self, round_: Round) -> dict[str, int]:
        return selectors.round_counts(round_)

    def get_lineage(self, round_: Round) -> dict[str, Any]:
        return selectors.lineage_of(round_)


class RoundPairOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    prompt_index = serializers.IntegerField(source="prompt.index")
    first = serializers.IntegerField(source="first_id", help_text="generation candidate id")
    second = serializers.IntegerField(source="second_id")
    first_score = serializers.FloatField(allow_null=True)
    second_score = serializers.FloatField(allow_null=True)
    margin = serializers.FloatField(allow_null=True)
    policy = Text()
    item = serializers.IntegerField(source="item_id", allow_null=True, help_text="the comparison item experts judge")


class EndIn(serializers.Serializer[Any]):
    reason = Text(required=False, allow_blank=True, default="", max_length=4000)


def _prompt_file(prompts: list[dict[str, Any]]) -> io.BytesIO:
    lines = [json.dumps({"messages": p["messages"], "metadata": p.get("metadata") or {}}) for p in prompts]
    return io.BytesIO(("\n".join(lines) + "\n").encode())


@extend_schema_view(get=extend_schema(summary="The project's rounds, newest first"))
class RoundListCreateView(ListView):
    serializer_class = RoundOut
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[Round]:
        return selectors.rounds_of(get_project_for_rounds(self.request.user, self.kwargs["pk"])).order_by("-number")

    @extend_schema(
        request=RoundIn,
        responses={
            202: RoundDetailOut,
            400: OpenApiResponse(description="Refused, nothing written: a reward model on another tokenizer…"),
            404: OpenApiResponse(description="No such project (or not yours to run rounds in), target or model."),
            409: OpenApiResponse(description="The previous round has not ended."),
        },
        summary="Start the next round (project admins): the target's model answers new prompts, K each",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_running_rounds(request.user, pk)
        data = RoundIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        target = DeploymentTarget.objects.filter(project=project, pk=values["target"]).first()
        if target is None:
            raise DomainError("No such deployment target in this project.", field="target", status=404)
        reward_model = None
        if values.get("reward_model") is not None:
            reward_model = RewardModel.objects.filter(project=project, pk=values["reward_model"]).first()
            if reward_model is None:
                raise DomainError("No such reward model in this project.", field="reward_model", status=404)
        upload = None
        if values["source"] == PromptSource.UPLOAD:
            if not values.get("prompts"):
                raise DomainError("Give the new prompts (source upload).", field="prompts")
            upload = _prompt_file([dict(p) for p in values["prompts"]])
        round_ = services.round_start(
            actor=request_user(request), project=project, target=target, source=values["source"],
            candidates_per_prompt=values["candidates_per_prompt"], pairs_per_prompt=values["pairs_per_prompt"],
            pair_policy=values["pair_policy"], reward_model=reward_model, decoding=values["decoding"],
            dpo_preset=values["dpo_preset"], dpo_values=values["dpo"], eval_fraction=values["eval_fraction"],
            min_decided=values["min_decided"], limit=values.get("limit"), upload=upload, fmt="chat_jsonl",
            source_name="api-prompts.jsonl" if upload else "",
        )  # fmt: skip
        return Response(RoundDetailOut(round_).data, status=status.HTTP_202_ACCEPTED)


class RoundDetailView(APIView):
    @extend_schema(responses=RoundDetailOut, summary="A round: its state, each step's row, counts and lineage")
    def get(self, request: Request, pk: int, number: int) -> Response:
        return Response(RoundDetailOut(get_round_for_user(request.user, pk, number)).data)


@extend_schema_view(get=extend_schema(summary="A round's pairs: which candidates, their reward scores, the policy"))
class RoundPairListView(ListView):
    serializer_class = RoundPairOut

    def get_queryset(self) -> QuerySet[RoundPair]:
        return selectors.pairs_of(get_round_for_user(self.request.user, self.kwargs["pk"], self.kwargs["number"]))


class RoundReleaseView(APIView):
    @extend_schema(
        request=None,
        responses={200: RoundDetailOut, 409: OpenApiResponse(description="Not judging, or too few pairs decided.")},
        summary="Build the round's release now from its decided pairs (project admins)",
    )
    def post(self, request: Request, pk: int, number: int) -> Response:
        round_ = get_round_for_runner(request.user, pk, number)
        return Response(RoundDetailOut(services.round_release_start(actor=request_user(request), round_=round_)).data)


class RoundEndView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=EndIn,
        responses={200: RoundDetailOut, 409: OpenApiResponse(description="The round has already ended.")},
        summary="End a round (project admins): without promotion once its adapter exists, else cancelled",
    )
    def post(self, request: Request, pk: int, number: int) -> Response:
        round_ = get_round_for_runner(request.user, pk, number)
        data = EndIn(data=request.data)
        data.is_valid(raise_exception=True)
        ended = services.round_end(actor=request_user(request), round_=round_, reason=data.validated_data["reason"])
        return Response(RoundDetailOut(ended).data)
