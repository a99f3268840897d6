"""REST API of the annotation app, for data leads' scripts: imports, items, annotations, review actions."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import parse_id
from accounts.models import ProjectPerm, User
from accounts.pagination import Pagination
from accounts.permissions import get_project_for_user, user_has_project_perm
from annotation import selectors, services
from annotation.models import Annotation, AnnotationState, ImportBatch, Item, ItemState, ReviewDecision
from annotation.parsing import ImportFormat
from annotation.permissions import get_annotation_for_reviewer, get_batch_for_user


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


class ImportOut(serializers.ModelSerializer[ImportBatch]):
    uploaded_by = serializers.CharField(source="uploaded_by.username")

    class Meta:
        model = ImportBatch
        fields = [
            "id", "source_name", "fmt", "purpose", "sha256", "size_bytes", "status", "skip_bad_lines", "uploaded_by",
            "lines_read", "imported_count", "bad_line_count", "duplicate_count", "pii_rejected_count",
            "errors", "duplicates", "scrub_counts", "uncertain_count", "uncertain", "failure_reason", "created_at",
            "finished_at",
        ]  # fmt: skip


class ImportIn(serializers.Serializer[None]):
    file = serializers.FileField()
    fmt = serializers.ChoiceField(choices=[f.value for f in ImportFormat])
    skip_bad_lines = serializers.BooleanField(default=False)
    purpose = serializers.ChoiceField(
        choices=["annotation", "mixin"], default="annotation",
        help_text="mixin: general-purpose conversations with answers for SFT releases, never annotated.",
    )  # fmt: skip
    csv_prompt = serializers.CharField(required=False, default="")
    csv_response = serializers.CharField(required=False, default="")
    csv_system = serializers.CharField(required=False, default="")
    csv_id = serializers.CharField(required=False, default="")
    csv_metadata = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class ImportListView(APIView):
    pagination_class = Pagination
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=ImportOut(many=True), summary="Import batches of a project (data leads)")
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.import_batches(project), request, view=self)
        return paginator.get_paginated_response(ImportOut(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": ImportIn},
        responses={201: ImportOut, 202: ImportOut},
        summary="Upload a file to import (201 when imported at once, 202 when a worker imports it)",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        data = ImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        mapping = None
        if values["fmt"] == ImportFormat.CSV:
            mapping = {
                "prompt": values["csv_prompt"],
                "response": values["csv_response"],
                "system": values["csv_system"],
                "id": values["csv_id"],
                "metadata": values["csv_metadata"],
            }
        batch = services.import_start(
            actor=_user(request),
            project=project,
            upload=values["file"],
            source_name=values["file"].name,
            fmt=values["fmt"],
            csv_mapping=mapping,
            skip_bad_lines=values["skip_bad_lines"],
            purpose=values["purpose"],
        )
        done = batch.status not in {"queued", "running"}
        return Response(ImportOut(batch).data, status=status.HTTP_201_CREATED if done else status.HTTP_202_ACCEPTED)


class ImportDetailView(APIView):
    @extend_schema(responses=ImportOut, summary="One import batch with its line-numbered report")
    def get(self, request: Request, pk: int, batch_pk: int) -> Response:
        return Response(ImportOut(get_batch_for_user(request.user, pk, batch_pk)).data)


class ItemOut(serializers.ModelSerializer[Item]):
    class Meta:
        model = Item
        fields = [
            "id", "external_id", "batch_id", "messages", "response", "metadata", "content_hash",
            "priority", "edge_case", "state", "hold_reason", "created_at",
        ]  # fmt: skip


class ItemListView(APIView):
    pagination_class = Pagination

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=ItemState.values),
            OpenApiParameter("batch", int),
            OpenApiParameter("edge_case", bool),
        ],
        responses=ItemOut(many=True),
        summary="Items of a project (data leads)",
    )
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        items: QuerySet[Item] = Item.objects.filter(project=project).order_by("id")
        params = request.query_params
        if params.get("state"):
            items = items.filter(state=params["state"])
        batch = parse_id(params.get("batch"))
        if batch is not None:
            items = items.filter(batch_id=batch)
        if params.get("edge_case") in {"true", "1"}:
            items = items.filter(edge_case=True)
        paginator = Pagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(ItemOut(page, many=True).data)


class AnnotationOut(serializers.ModelSerializer[Annotation]):
    annotator = serializers.CharField(source="annotator.username")
    rubric_version = serializers.IntegerField(source="rubric_version.version")

    class Meta:
        model = Annotation
        fields = [
            "id", "item_id", "annotator", "rubric_version", "original_response", "response", "scores", "flags",
            "note", "time_spent_ms", "state", "revision", "submitted_at", "reviewed_at",
        ]  # fmt: skip


class AnnotationListView(APIView):
    pagination_class = Pagination

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=AnnotationState.values),
            OpenApiParameter("annotator", str, description="Username"),
            OpenApiParameter("item", int),
        ],
        responses=AnnotationOut(many=True),
        summary="Annotations of a project (data leads and reviewers)",
    )
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.VIEW)
        if not (
            user_has_project_perm(request.user, project, ProjectPerm.MANAGE_DATA)
            or user_has_project_perm(request.user, project, ProjectPerm.REVIEW)
        ):
            get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)  # answers 404
        rows = (
            Annotation.objects.filter(item__project=project)
            .select_related("annotator", "rubric_version")
            .order_by("id")
        )
        params = request.query_params
        if params.get("state"):
            rows = rows.filter(state=params["state"])
        if params.get("annotator"):
            rows = rows.filter(annotator__username=params["annotator"])
        item = parse_id(params.get("item"))
        if item is not None:
            rows = rows.filter(item_id=item)
        paginator = Pagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(AnnotationOut(page, many=True).data)


class ReviewIn(serializers.Serializer[None]):
    decision = serializers.ChoiceField(choices=ReviewDecision.values)
    comment = serializers.CharField(required=False, default="", allow_blank=True)
    edited_response = serializers.CharField(required=False, allow_null=True, default=None)
    edited_scores = serializers.DictField(child=serializers.CharField(), required=False, allow_null=True, default=None)


class AnnotationReviewView(APIView):
    @extend_schema(request=ReviewIn, responses=AnnotationOut, summary="Approve, send back or edit-and-approve")
    def post(self, request: Request, pk: int, annotation_pk: int) -> Response:
        annotation = get_annotation_for_reviewer(request.user, pk, annotation_pk)
        data = ReviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.annotation_review(reviewer=_user(request), annotation=annotation, **data.validated_data)
        annotation.refresh_from_db()
        return Response(AnnotationOut(annotation).data)
