"""REST API for a project's agreement: the latest figures and a request to recompute them on a worker."""

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user
from core.figures import figures_of
from preferences import selectors, services
from preferences.permissions import get_project_for_quality


class RewardModelAgreementOut(serializers.Serializer[Any]):
    reward_model = serializers.IntegerField(help_text="id of one of the project's reward models")
    name = serializers.CharField()
    n = serializers.IntegerField(help_text="Decided comparisons (pairs) whose two answers it scored; ties left out")
    agreed = serializers.FloatField(help_text="Pairs where it scores the experts' answer higher (equal scores: ½)")
    accuracy = serializers.FloatField(allow_null=True, help_text="agreed / n (null when n is 0)")
    low = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval, lower bound")
    high = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval, upper bound")


class AgreementOut(serializers.Serializer[Any]):
    computed_at = serializers.DateTimeField(
        allow_null=True, help_text="When the judgements were read: every one committed before is counted."
    )
    judgements = serializers.IntegerField(help_text="How many judgements (gold items left out) the figures count.")
    pending = serializers.BooleanField(
        allow_null=True,
        help_text="A recomputation is queued or running (null: unknown, the cache is down). A worker recomputes "
        "after every burst of judgements; poll until this is false.",
    )
    figures = serializers.DictField()
    reward_models = RewardModelAgreementOut(
        many=True,
        help_text="Each reward model that scored the project's comparisons, against the experts' decided "
        "preferences (computed when asked, not by the worker).",
    )


AGREEMENT_EXAMPLE = {
    "computed_at": "2026-12-04T16:02:11.514Z",
    "judgements": 360,
    "pending": False,
    "figures": {
        "alpha_choice_nominal": 0.71,
        "alpha_strength_ordinal": 0.64,
        "alpha_per_criterion": {},
        "kendalls_w_mean": None,
        "kendalls_w_items": 0,
        "cohens_kappa": [{"a": "alice", "b": "bob", "shared": 120, "kappa": 0.68}],
        "consensus": {"alice": {"units": 40, "agreed": 35, "rate": 0.875}},
    },
    "reward_models": [
        {
            "reward_model": 3,
            "name": "reward-12",
            "n": 120,
            "agreed": 96.5,
            "accuracy": 0.804,
            "low": 0.725,
            "high": 0.865,
        }
    ],
}


class AgreementView(APIView):
    @extend_schema(
        responses=AgreementOut,
        summary="The latest agreement figures of a project, the judgements they count and when they were read",
        examples=[OpenApiExample("Figures", value=AGREEMENT_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_quality(request.user, pk)
        snapshot = selectors.latest_agreement(project)
        body = {
            "computed_at": snapshot.computed_at if snapshot else None,
            "judgements": snapshot.judgements if snapshot else 0,
            "pending": services.agreement_pending(project),
            "figures": snapshot.figures if snapshot else {},
            "reward_models": figures_of("reward_models", project.pk),
        }
        return Response(AgreementOut(body).data)


# --- Agreement recompute ------------------------------------------------------------------------------------


class AgreementRecomputeOut(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["queued"])
    requested_at = serializers.DateTimeField(
        help_text="The figures answer this request once the agreement's computed_at is later and pending is false."
    )
    status_url = serializers.URLField(help_text="The agreement route to poll.")


class AgreementRecomputeView(APIView):
    @extend_schema(
        request=None,
        responses={
            202: AgreementRecomputeOut,
            503: OpenApiResponse(description="The task queue did not take the request; nothing was recorded."),
        },
        summary="Recompute the agreement figures now, on a worker (data leads and up, as the page's button)",
        description="Answers 202 at once; poll `status_url` until `pending` is false and `computed_at` is later than "
        "`requested_at`. 503 when the task queue does not take the request (nothing is recorded then).",
        examples=[
            OpenApiExample(
                "Queued",
                value={
                    "status": "queued",
                    "requested_at": "2026-12-04T16:02:09.120Z",
                    "status_url": "https://enclave.example/api/v1/projects/7/agreement/",
                },
                response_only=True,
                status_codes=["202"],
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        requested_at = services.agreement_recompute_request(actor=request_user(request), project=project)
        body = {
            "status": "queued",
            "requested_at": requested_at,
            "status_url": request.build_absolute_uri(reverse("api_agreement", kwargs={"pk": project.pk})),
        }
        return Response(AgreementRecomputeOut(body).data, status=status.HTTP_202_ACCEPTED)
