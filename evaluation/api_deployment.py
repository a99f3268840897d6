"""REST API of deployment targets: targets (list, create, read, change thresholds), the current pointer a serving
stack inside the perimeter pulls, history, and promotion and rollback requests with their approvals.

Data leads, project admins and approvers read; project admins create and change targets and make requests;
holders of the approve permission (approvers, project admins) approve or refuse."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
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
from evaluation.deployment import approvals_needed
from evaluation.models import Deployment, DeploymentTarget, Evaluation, PromotionRequest, RequestKind
from evaluation.permissions import get_project_for_deployments, get_request_for_user, get_target_for_user
from training.models import Adapter, BaseModel

NOT_YOURS = OpenApiResponse(description="No such project, target or request, or not yours to see: a missing address.")
REFUSED = OpenApiResponse(description="Refused, with the reason in ``detail`` (nothing is written).")
CONFLICT = OpenApiResponse(description="A pending request exists, the request is no longer pending, or a repeat.")


def _sha(adapter: Adapter | None) -> str:
    return adapter.sha256 if adapter is not None else ""


class TargetIn(serializers.Serializer[Any]):
    name = Text(max_length=100, help_text="lowercase letters, digits and hyphens: retail-banking-assistant")
    base_model = serializers.IntegerField(help_text="id of a ready base model")
    current_adapter = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="id of the adapter served now; null: the base model"
    )
    description = Text(required=False, allow_blank=True, default="")
    min_win_rate_lower = serializers.FloatField(required=False, default=0.5, min_value=0, max_value=1)
    max_metric_regression = serializers.FloatField(required=False, default=0.02, min_value=0, max_value=1)


class TargetUpdateIn(serializers.Serializer[Any]):
    description = Text(required=False, allow_blank=True)
    min_win_rate_lower = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_metric_regression = serializers.FloatField(required=False, min_value=0, max_value=1)


class TargetOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = Text()
    description = Text()
    base_model = serializers.IntegerField(source="base_model_id")
    base_model_name = Text(source="base_model.name")
    base_model_hash = Text(source="base_model.content_hash")
    current_adapter = serializers.IntegerField(source="current_adapter_id", allow_null=True)
    current_adapter_sha256 = serializers.SerializerMethodField()
    min_win_rate_lower = serializers.FloatField()
    max_metric_regression = serializers.FloatField()
    approvals_required = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_current_adapter_sha256(self, target: DeploymentTarget) -> str:
        return _sha(target.current_adapter)


class BaseModelRef(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = Text()
    hash = Text()


class CurrentFileOut(serializers.Serializer[Any]):
    path = Text()
    size_bytes = serializers.IntegerField()
    sha256 = Text()
    download = Text(help_text="Address of the file's download (the adapter file API).")


class CurrentOut(serializers.Serializer[Any]):
    target = Text()
    adapter = serializers.IntegerField(allow_null=True, help_text="null: the base model alone")
    adapter_name = Text()
    adapter_sha256 = Text(help_text="sha256 of adapter_model.safetensors; empty for the base model alone")
    base_model = BaseModelRef()
    files = CurrentFileOut(many=True)
    lineage = Text(help_text="Address of the adapter's lineage record; empty for the base model alone")
    promoted_at = serializers.DateTimeField()
    kind = Text(help_text="created, promotion or rollback: how the current model became current")
    request = serializers.IntegerField(allow_null=True)


class DeploymentOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = Text()
    adapter = serializers.IntegerField(source="adapter_id", allow_null=True)
    adapter_sha256 = serializers.SerializerMethodField()
    previous_adapter = serializers.IntegerField(source="previous_adapter_id", allow_null=True)
    request = serializers.IntegerField(source="request_id", allow_null=True)
    created_at = serializers.DateTimeField()

    def get_adapter_sha256(self, deployment: Deployment) -> str:
        return _sha(deployment.adapter)


class ApprovalOut(serializers.Serializer[Any]):
    approver = Text()
    note = Text()
    created_at = serializers.DateTimeField()


class RequestOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    target = Text(source="target.name")
    kind = Text()
    state = Text()
    adapter = serializers.IntegerField(source="adapter_id", allow_null=True, help_text="null: the base model alone")
    adapter_sha256 = serializers.SerializerMethodField()
    evaluation = serializers.IntegerField(source="evaluation_id", allow_null=True)
    replaces_adapter = serializers.IntegerField(source="replaces_adapter_id", allow_null=True)
    reason = Text()
    gate = serializers.DictField(help_text="Every check of the promotion gate with pass or fail and its numbers.")
    decision_note = Text()
    requested_by = Text(source="requested_by.username")
    requested_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    approvals = serializers.SerializerMethodField()
    approvals_needed = serializers.SerializerMethodField()

    def get_adapter_sha256(self, request: PromotionRequest) -> str:
        return _sha(request.adapter)

    def get_approvals(self, request: PromotionRequest) -> list[dict[str, Any]]:
        return ApprovalOut(selectors.approvals_of(request), many=True).data  # type: ignore[return-value]

    def get_approvals_needed(self, request: PromotionRequest) -> int:
        return approvals_needed(request)


class RequestIn(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=RequestKind.choices, default=RequestKind.PROMOTION)
    adapter = serializers.IntegerField(
        allow_null=True, help_text="id of an adapter of this project; null (rollback only): the base model alone"
    )
    evaluation = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="promotion: id of the adapter's finished evaluation"
    )
    reason = Text(required=False, allow_blank=True, default="", help_text="rollback: why (required)")


class NoteIn(serializers.Serializer[Any]):
    note = Text(required=False, allow_blank=True, default="")


def _adapter(target: DeploymentTarget, adapter_id: int | None) -> Adapter | None:
    if adapter_id is None:
        return None
    adapter = Adapter.objects.filter(project_id=target.project_id, pk=adapter_id).select_related("job").first()
    if adapter is None:
        raise DomainError("No such adapter in this project.", field="adapter", status=404)
    return adapter


@extend_schema_view(get=extend_schema(summary="The project's deployment targets with their current models"))
class TargetListCreateView(ListView):
    serializer_class = TargetOut
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[DeploymentTarget]:
        return selectors.targets_of(get_project_for_deployments(self.request.user, self.kwargs["pk"]))

    @extend_schema(
        request=TargetIn,
        responses={201: TargetOut, 400: REFUSED, 404: NOT_YOURS, 409: CONFLICT},
        summary="Name a deployment target with its base model, current adapter and gate thresholds (project admins)",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.RUN_TRAINING)
        data = TargetIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        base_model = BaseModel.objects.filter(pk=values.pop("base_model")).first()
        if base_model is None:
            raise DomainError("No such base model.", field="base_model", status=404)
        adapter_id = values.pop("current_adapter")
        adapter = None
        if adapter_id is not None:
            adapter = Adapter.objects.filter(project=project, pk=adapter_id).first()
            if adapter is None:
                raise DomainError("No such adapter in this project.", field="current_adapter", status=404)
        target = services.deployment_target_create(
            actor=request_user(request), project=project, base_model=base_model, current_adapter=adapter, **values
        )
        return Response(TargetOut(target).data, status=status.HTTP_201_CREATED)


class TargetDetailView(APIView):
    @extend_schema(responses={200: TargetOut, 404: NOT_YOURS}, summary="A deployment target and its thresholds")
    def get(self, request: Request, pk: int, name: str) -> Response:
        return Response(TargetOut(get_target_for_user(request.user, pk, name)).data)

    @extend_schema(
        request=TargetUpdateIn,
        responses={200: TargetOut, 400: REFUSED, 404: NOT_YOURS},
        summary="Change a target's description or gate thresholds (project admins)",
    )
    def patch(self, request: Request, pk: int, name: str) -> Response:
        target = get_target_for_user(request.user, pk, name, ProjectPerm.RUN_TRAINING)
        data = TargetUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        target = services.deployment_target_update(actor=request_user(request), target=target, **data.validated_data)
        return Response(TargetOut(target).data)


class TargetCurrentView(APIView):
    @extend_schema(
        responses={200: CurrentOut, 404: NOT_YOURS},
        summary="What the target serves now: the approved adapter, its sha256, the base model's hash and the "
        "download addresses (a serving stack's pull)",
        examples=[
            OpenApiExample(
                "Current",
                value={"target": "retail-banking-assistant", "adapter": 3,
                       "adapter_name": "tiny + prefs v1 (DPO, job #4)", "adapter_sha256": "9f2c…",
                       "base_model": {"id": 1, "name": "tiny", "hash": "4be1…"},
                       "files": [{"path": "adapter_model.safetensors", "size_bytes": 6815744, "sha256": "9f2c…",
                                  "download": "/api/v1/projects/7/adapters/3/files/0/"}],
                       "lineage": "/api/v1/projects/7/adapters/3/lineage/", "promoted_at": "2026-12-05T16:20:00Z",
                       "kind": "promotion", "request": 12},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request: Request, pk: int, name: str) -> Response:
        return Response(CurrentOut(selectors.current_pointer(get_target_for_user(request.user, pk, name))).data)


@extend_schema_view(get=extend_schema(summary="A target's history: every change of its current model, newest first"))
class TargetHistoryView(ListView):
    serializer_class = DeploymentOut

    def get_queryset(self) -> QuerySet[Deployment]:
        return selectors.history_of(get_target_for_user(self.request.user, self.kwargs["pk"], self.kwargs["name"]))


@extend_schema_view(get=extend_schema(summary="A target's promotion and rollback requests, newest first"))
class RequestListCreateView(ListView):
    serializer_class = RequestOut
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[PromotionRequest]:
        return selectors.requests_of(get_target_for_user(self.request.user, self.kwargs["pk"], self.kwargs["name"]))

    @extend_schema(
        request=RequestIn,
        responses={201: RequestOut, 400: REFUSED, 404: NOT_YOURS, 409: CONFLICT},
        summary="Ask for a promotion (the gate is checked now) or a rollback with its reason (project admins)",
    )
    def post(self, request: Request, pk: int, name: str) -> Response:
        target = get_target_for_user(request.user, pk, name, ProjectPerm.RUN_TRAINING)
        data = RequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        adapter = _adapter(target, values["adapter"])
        if values["kind"] == RequestKind.ROLLBACK:
            made = services.rollback_request(
                actor=request_user(request), target=target, adapter=adapter, reason=values["reason"]
            )
        else:
            if adapter is None:
                raise DomainError("Name the adapter to promote.", field="adapter")
            evaluation = None
            if values["evaluation"] is not None:
                evaluation = Evaluation.objects.filter(project_id=target.project_id, pk=values["evaluation"]).first()
                if evaluation is None:
                    raise DomainError("No such evaluation in this project.", field="evaluation", status=404)
            made = services.promotion_request(
                actor=request_user(request), target=target, adapter=adapter, evaluation=evaluation
            )
        return Response(RequestOut(made).data, status=status.HTTP_201_CREATED)


class RequestDetailView(APIView):
    @extend_schema(responses={200: RequestOut, 404: NOT_YOURS}, summary="A request: its gate, approvals so far, state")
    def get(self, request: Request, pk: int, name: str, request_pk: int) -> Response:
        return Response(RequestOut(get_request_for_user(request.user, pk, name, request_pk)).data)


def _decision(request: Request, pk: int, name: str, request_pk: int, perm: str, decide: Any) -> Response:
    found = get_request_for_user(request.user, pk, name, request_pk, perm)
    data = NoteIn(data=request.data)
    data.is_valid(raise_exception=True)
    decided = decide(actor=request_user(request), request=found, note=data.validated_data["note"])
    return Response(RequestOut(decided).data)


DECISION = {200: RequestOut, 403: REFUSED, 404: NOT_YOURS, 409: CONFLICT}


class RequestApproveView(APIView):
    @extend_schema(
        request=NoteIn,
        responses=DECISION,
        summary="Approve a request (approve permission; not its requester nor the adapter's job starter); the "
        "last approval needed carries it out",
    )
    def post(self, request: Request, pk: int, name: str, request_pk: int) -> Response:
        return _decision(request, pk, name, request_pk, ProjectPerm.APPROVE_PROMOTION, services.promotion_approve)


class RequestRefuseView(APIView):
    @extend_schema(request=NoteIn, responses=DECISION, summary="Refuse a pending request (approve permission)")
    def post(self, request: Request, pk: int, name: str, request_pk: int) -> Response:
        return _decision(request, pk, name, request_pk, ProjectPerm.APPROVE_PROMOTION, services.promotion_refuse)


class RequestWithdrawView(APIView):
    @extend_schema(request=NoteIn, responses=DECISION, summary="Withdraw a pending request (its requester, admins)")
    def post(self, request: Request, pk: int, name: str, request_pk: int) -> Response:
        return _decision(request, pk, name, request_pk, ProjectPerm.RUN_TRAINING, services.promotion_withdraw)
