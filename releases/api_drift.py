"""REST API of eval-set health: the latest drift report (of the project's current eval set, or of one release's
eval split), a new report, “Refresh the eval set” and the thresholds. Reports are computed by a worker."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Project, ProjectPerm
from accounts.permissions import get_project_for_user, request_user
from core.errors import DomainError
from core.filters import BIGINT_MAX, read_query
from releases import drift, drift_refresh, selectors
from releases.api import ReleaseOut
from releases.models import Release
from releases.permissions import get_project_for_releases


class DriftReportOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    release = serializers.IntegerField(source="release_id", allow_null=True, help_text="null: the current eval set")
    state = serializers.CharField()
    failure_reason = serializers.CharField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    computed_at = serializers.DateTimeField(allow_null=True)
    seconds = serializers.FloatField(allow_null=True)
    model_hash = serializers.CharField(help_text="The prompt-embedding model's content hash (empty: no embeddings)")
    thresholds = serializers.DictField(help_text="The thresholds in force when it was computed")
    flagged = serializers.ListField(child=serializers.CharField(), help_text="Checks that crossed a threshold")
    result = serializers.DictField(
        help_text="keys (per metadata key: values with eval/recent counts and shares, psi, chi2_p, flagged), "
        "language, prompt_tokens (quartiles, ks, p), embedding (centroid_distance, mmd, embedded and missing "
        "counts), farthest (20 recent prompts least like any eval prompt), coverage_gaps"
    )


class DriftSettingsOut(serializers.Serializer[Any]):
    psi_max = serializers.FloatField(min_value=0, max_value=10)
    chi2_p_min = serializers.FloatField(min_value=0, max_value=1)
    ks_max = serializers.FloatField(min_value=0, max_value=1)
    centroid_max = serializers.FloatField(min_value=0, max_value=2)
    mmd_p_min = serializers.FloatField(min_value=0, max_value=1)
    window_days = serializers.IntegerField(min_value=1, max_value=3650)
    min_eval_per_stratum = serializers.IntegerField(min_value=0, max_value=100_000)


class DriftOut(serializers.Serializer[Any]):
    report = DriftReportOut(allow_null=True, help_text="The latest computed report (null: none yet)")
    pending = DriftReportOut(allow_null=True, help_text="A newer report queued or being computed")
    settings = DriftSettingsOut()


class DriftQuery(serializers.Serializer[Any]):
    release = serializers.IntegerField(
        required=False, min_value=1, max_value=BIGINT_MAX, help_text="A built release: its eval split (default: "
        "the project's current eval set)"
    )  # fmt: skip


def _release(project: Project, number: int | None) -> Release | None:
    if number is None:
        return None
    found = selectors.built_release(project, number)
    if found is None:
        raise DomainError("“release” names no built release of this project.", field="release", status=404)
    return found


class DriftView(APIView):
    @extend_schema(parameters=[DriftQuery], responses=DriftOut, summary="The latest eval-set drift report")
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_releases(request.user, pk)
        release = _release(project, read_query(request, DriftQuery).get("release"))
        number = release.pk if release else None
        report = selectors.latest_drift_report(project.pk, number)
        pending = selectors.pending_drift_report(project.pk, number)
        if pending is not None and report is not None and pending.pk < report.pk:
            pending = None
        settings = drift.eval_health_settings(project)
        return Response(DriftOut({"report": report, "pending": pending, "settings": settings}).data)


class DriftRefreshIn(serializers.Serializer[Any]):
    release = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=BIGINT_MAX)


class DriftRefreshReportView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=DriftRefreshIn,
        responses={202: DriftReportOut},
        summary="Queue a new drift report (data leads); one already queued for the same set is returned",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        data = DriftRefreshIn(data=request.data)
        data.is_valid(raise_exception=True)
        release = _release(project, data.validated_data.get("release"))
        report = drift.drift_report_request(actor=request_user(request), project=project, release=release)
        return Response(DriftReportOut(report).data, status=status.HTTP_202_ACCEPTED)


class DriftRefreshEvalSetView(APIView):
    @extend_schema(
        request=None,
        responses={
            202: ReleaseOut,
            409: OpenApiResponse(description="No built release yet, or no recent item to add."),
        },
        summary="Refresh the eval set: the latest release's next version with recent items added to eval",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        release = drift_refresh.eval_set_refresh(actor=request_user(request), project=project)
        return Response(ReleaseOut(release).data, status=status.HTTP_202_ACCEPTED)


class DriftSettingsIn(DriftSettingsOut):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class DriftSettingsView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses=DriftSettingsOut, summary="The project's drift and coverage thresholds")
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_releases(request.user, pk)
        return Response(DriftSettingsOut(drift.eval_health_settings(project)).data)

    @extend_schema(
        request=DriftSettingsIn, responses=DriftSettingsOut, summary="Change thresholds (data leads; audited)"
    )
    def patch(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        data = DriftSettingsIn(data=request.data)
        data.is_valid(raise_exception=True)
        row = drift.eval_health_settings_update(
            actor=request_user(request), project=project, values=dict(data.validated_data)
        )
        return Response(DriftSettingsOut(row).data)
