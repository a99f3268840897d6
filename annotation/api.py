"""REST API of the annotation app, for data leads' scripts: imports, items, annotations, review actions."""

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user, user_has_project_perm
from annotation import selectors, services
from annotation.models import Annotation, AnnotationState, ImportBatch, ImportStatus, Item, ItemState, ReviewDecision
from annotation.parsing import ImportFormat
from annotation.peers.records import PeerFormat
from annotation.permissions import get_annotation_for_reviewer, get_batch_for_user
from core.fields import Text
from core.filters import BooleanFilter, IdFilter, StrictFilterSet, at_or_after, before
from core.lists import ListView


class ImportProgressOut(serializers.Serializer[Any]):
    lines = serializers.IntegerField(help_text="Lines read so far.")
    percent = serializers.IntegerField(help_text="Share of the file read so far, 0–100.")


class ImportOut(serializers.ModelSerializer[ImportBatch]):
    uploaded_by = Text(source="uploaded_by.username")
    status_url = serializers.SerializerMethodField(help_text="Where to poll the import until its status is final.")
    mapping_url = serializers.SerializerMethodField(
        help_text="Another tool's file waiting for its mapping: where to POST it; null otherwise."
    )
    progress = serializers.SerializerMethodField(help_text="While queued or running: how far it has read.")

    class Meta:
        model = ImportBatch
        fields = [
            "id", "source_name", "fmt", "purpose", "sha256", "size_bytes", "status", "skip_bad_lines", "uploaded_by",
            "lines_read", "imported_count", "bad_line_count", "duplicate_count", "pii_rejected_count",
            "errors", "duplicates", "scrub_counts", "uncertain_count", "uncertain", "failure_reason", "created_at",
            "finished_at", "status_url", "mapping_url", "progress",
            "peer_scan", "field_map", "annotator_map", "judgement_count", "answer_count", "dropped_count", "dropped",
        ]  # fmt: skip

    def get_status_url(self, batch: ImportBatch) -> str:
        path = reverse("api_import", kwargs={"pk": batch.project_id, "batch_pk": batch.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def get_mapping_url(self, batch: ImportBatch) -> str | None:
        if batch.status != ImportStatus.MAPPING:
            return None
        path = reverse("api_import_mapping", kwargs={"pk": batch.project_id, "batch_pk": batch.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(ImportProgressOut(allow_null=True))
    def get_progress(self, batch: ImportBatch) -> dict[str, int] | None:
        if batch.status not in {ImportStatus.QUEUED, ImportStatus.RUNNING}:
            return None
        return selectors.import_progress(batch)


# What an import's outcome answers: imported at once 201, handed to a worker 202 (poll ``status_url``), refused
# for bad lines 422 with its line-numbered errors, failed (a fault of ours, e.g. the broker unreachable) 503.
_IMPORT_STATUS_CODES = {
    ImportStatus.DONE: status.HTTP_201_CREATED,
    ImportStatus.QUEUED: status.HTTP_202_ACCEPTED,
    ImportStatus.RUNNING: status.HTTP_202_ACCEPTED,
    ImportStatus.REFUSED: status.HTTP_422_UNPROCESSABLE_ENTITY,
    ImportStatus.FAILED: status.HTTP_503_SERVICE_UNAVAILABLE,
    ImportStatus.MAPPING: status.HTTP_202_ACCEPTED,
    ImportStatus.CANCELLED: status.HTTP_200_OK,
}
IMPORT_RESPONSES = {
    201: ImportOut,
    202: OpenApiResponse(
        ImportOut,
        description=(
            "Imported by a worker: poll `status_url` until `status` is final. Or, for another tool's file, "
            "`status` `mapping`: `peer_scan` lists its fields and annotators; POST the mapping to `mapping_url`."
        ),
    ),
    422: OpenApiResponse(
        ImportOut, description="Refused: bad lines and no `skip_bad_lines`; nothing imported, `errors` numbers them."
    ),
    503: OpenApiResponse(ImportOut, description="Failed on our side (`failure_reason`); nothing imported."),
}


def import_response(request: Request, batch: ImportBatch) -> Response:
    """The answer to an upload: its outcome's status code, the batch, and where to poll it."""
    body = ImportOut(batch, context={"request": request}).data
    code = _IMPORT_STATUS_CODES[ImportStatus(batch.status)]
    headers = {"Location": body["status_url"]} if code == status.HTTP_202_ACCEPTED else None
    return Response(body, status=code, headers=headers)


class ImportIn(serializers.Serializer[None]):
    file = serializers.FileField(allow_empty_file=True)  # an empty file is refused by the import, as a 422
    fmt = serializers.ChoiceField(choices=[*(f.value for f in ImportFormat), *(f.value for f in PeerFormat)])
    skip_bad_lines = serializers.BooleanField(default=False)
    purpose = serializers.ChoiceField(
        choices=["annotation", "mixin"], default="annotation",
        help_text="mixin: general-purpose conversations with answers for SFT releases, never annotated.",
    )  # fmt: skip
    csv_prompt = Text(required=False, default="")
    csv_response = Text(required=False, default="")
    csv_system = Text(required=False, default="")
    csv_id = Text(required=False, default="")
    csv_metadata = serializers.ListField(child=Text(), required=False, default=list)
    field_map = serializers.JSONField(
        required=False, default=None,
        help_text='Label Studio: which task fields hold what, {"prompt": …, "candidates": [left, right, …], '
        '"response": …}; without it the guess in `peer_scan.field_guess` is used.',
    )  # fmt: skip
    annotators = serializers.JSONField(
        required=False, default=None,
        help_text="Another tool's file: each annotator key of the file mapped to a member's user id, \"new\" (a "
        "pseudonymous imported annotator that cannot sign in) or \"skip\". With every annotator mapped the import "
        "goes on at once; otherwise it waits (202, `status` `mapping`).",
    )  # fmt: skip


class ImportFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=ImportStatus.choices)
    fmt = django_filters.ChoiceFilter(choices=[(f.value, f.value) for f in [*ImportFormat, *PeerFormat]])
    created_after = at_or_after("created_at")
    created_before = before("created_at")


@extend_schema_view(get=extend_schema(summary="Import batches of a project (data leads)"))
class ImportListView(ListView):
    serializer_class = ImportOut
    filterset_class = ImportFilter
    queryset = ImportBatch.objects.none()
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[ImportBatch]:
        project = get_project_for_user(self.request.user, self.kwargs["pk"], ProjectPerm.MANAGE_DATA)
        return selectors.import_batches(project)

    @extend_schema(
        request={"multipart/form-data": ImportIn},
        responses=IMPORT_RESPONSES,
        summary="Upload a file to import (201 imported, 202 a worker imports it, 422 refused with its errors)",
        description=(
            "The file streams to disk and may be up to IMPORT_MAX_MB (default 1 GiB; larger answers 413). "
            "Files up to 2 MiB are imported in the request; larger ones by a worker (202: poll `status_url`, "
            "which shows `progress`). All or nothing: a bad line refuses the whole file (422, `status` "
            "`refused`, `errors` with line numbers) unless `skip_bad_lines` is set. `fmt` `comparison_jsonl` "
            "creates comparisons; a format that does not fit the project's work (conversations into a project of "
            "comparisons, or comparisons into an SFT project) is refused with a 400 naming `fmt`."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        data = ImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services.import_format_check(project=project, fmt=values["fmt"])
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
            actor=request_user(request),
            project=project,
            upload=values["file"],
            source_name=values["file"].name,
            fmt=values["fmt"],
            csv_mapping=mapping,
            skip_bad_lines=values["skip_bad_lines"],
            purpose=values["purpose"],
            fields=values["field_map"],
            annotators=values["annotators"],
        )
        return import_response(request, batch)


class ImportDetailView(APIView):
    @extend_schema(responses=ImportOut, summary="One import batch with its line-numbered report")
    def get(self, request: Request, pk: int, batch_pk: int) -> Response:
        batch = get_batch_for_user(request.user, pk, batch_pk)
        return Response(ImportOut(batch, context={"request": request}).data)


class ItemOut(serializers.ModelSerializer[Item]):
    class Meta:
        model = Item
        fields = [
            "id", "external_id", "batch_id", "messages", "response", "metadata", "content_hash",
            "priority", "edge_case", "state", "hold_reason", "created_at",
        ]  # fmt: skip


class ItemFilter(StrictFilterSet):
    state = django_filters.ChoiceFilter(choices=ItemState.choices)
    batch = IdFilter(field_name="batch_id", help_text="Import batch id")
    edge_case = BooleanFilter()
    created_after = at_or_after("created_at")
    created_before = before("created_at")


@extend_schema_view(get=extend_schema(summary="Items of a project (data leads)"))
class ItemListView(ListView):
    serializer_class = ItemOut
    filterset_class = ItemFilter
    queryset = Item.objects.none()

    def get_queryset(self) -> QuerySet[Item]:
        project = get_project_for_user(self.request.user, self.kwargs["pk"], ProjectPerm.MANAGE_DATA)
        return Item.objects.filter(project=project).order_by("id")


class AnnotationOut(serializers.ModelSerializer[Annotation]):
    annotator = Text(source="annotator.username")
    rubric_version = serializers.IntegerField(source="rubric_version.version")

    class Meta:
        model = Annotation
        fields = [
            "id", "item_id", "annotator", "rubric_version", "original_response", "response", "scores", "flags",
            "note", "time_spent_ms", "state", "revision", "submitted_at", "reviewed_at",
        ]  # fmt: skip


class AnnotationFilter(StrictFilterSet):
    state = django_filters.ChoiceFilter(choices=AnnotationState.choices)
    annotator = django_filters.CharFilter(field_name="annotator__username", help_text="Username")
    item = IdFilter(field_name="item_id")
    submitted_after = at_or_after("submitted_at")
    submitted_before = before("submitted_at")


@extend_schema_view(get=extend_schema(summary="Annotations of a project (data leads and reviewers)"))
class AnnotationListView(ListView):
    serializer_class = AnnotationOut
    filterset_class = AnnotationFilter
    queryset = Annotation.objects.none()

    def get_queryset(self) -> QuerySet[Annotation]:
        user, pk = self.request.user, self.kwargs["pk"]
        project = get_project_for_user(user, pk, ProjectPerm.VIEW)
        if not (
            user_has_project_perm(user, project, ProjectPerm.MANAGE_DATA)
            or user_has_project_perm(user, project, ProjectPerm.REVIEW)
        ):
            get_project_for_user(user, pk, ProjectPerm.MANAGE_DATA)  # answers 404
        return (
            Annotation.objects.filter(item__project=project)
            .select_related("annotator", "rubric_version")
            .order_by("id")
        )


class ReviewIn(serializers.Serializer[None]):
    decision = serializers.ChoiceField(choices=ReviewDecision.values)
    comment = Text(required=False, default="", allow_blank=True)
    edited_response = Text(required=False, allow_null=True, default=None)
    edited_scores = serializers.DictField(child=Text(), required=False, allow_null=True, default=None)


class AnnotationReviewView(APIView):
    @extend_schema(
        request=ReviewIn,
        responses={
            200: AnnotationOut,
            409: OpenApiResponse(description="Not waiting for review (reviewed already), or your own work."),
        },
        summary="Approve, send back or edit-and-approve",
    )
    def post(self, request: Request, pk: int, annotation_pk: int) -> Response:
        annotation = get_annotation_for_reviewer(request.user, pk, annotation_pk)
        data = ReviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.annotation_review(reviewer=request_user(request), annotation=annotation, **data.validated_data)
        annotation.refresh_from_db()
        return Response(AnnotationOut(annotation).data)
