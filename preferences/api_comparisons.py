"""REST API for a project's comparisons: create them (a JSON list or a JSONL file, through the same import as a
file) and list them with provenance and gold answers, for data leads."""

import json
from typing import Any

import django_filters
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user
from annotation import services as annotation_services
from annotation.api import IMPORT_RESPONSES, import_response
from annotation.models import Item, ItemState
from annotation.parsing import ImportFormat
from core.fields import Text
from core.filters import BooleanFilter, StrictFilterSet, at_or_after, before
from core.lists import ListView
from preferences.models import COMPARISON


class CandidateIn(serializers.Serializer[Any]):
    content = Text(allow_blank=True, trim_whitespace=False)
    model = Text(required=False, help_text="Provenance: never shown to annotators.")
    version = Text(required=False)
    adapter = Text(required=False)
    decoding = serializers.DictField(required=False)


class ComparisonIn(serializers.Serializer[Any]):
    """One comparison, the same fields as a line of the comparison JSONL import."""

    id = Text(required=False)
    prompt = Text(required=False)
    messages = serializers.ListField(child=serializers.DictField(), required=False)
    candidates = serializers.ListField(child=CandidateIn(), min_length=2)
    gold = serializers.JSONField(
        required=False,
        help_text='The known answer of a gold item: a 1-based candidate number, "tie", or a ranking ([[2], [1, 3]]).',
    )
    metadata = serializers.DictField(required=False)


class ComparisonsIn(serializers.Serializer[Any]):
    """What the view checks: the elements themselves are checked by the importer, which numbers its errors."""

    comparisons = serializers.ListField(child=serializers.DictField(), min_length=1, max_length=10_000)
    skip_bad_lines = serializers.BooleanField(default=False)


class ComparisonsInSchema(serializers.Serializer[Any]):
    """Comparisons to import: each element is a line of the comparison JSONL import."""

    comparisons = serializers.ListField(child=ComparisonIn(), min_length=1, max_length=10_000)
    skip_bad_lines = serializers.BooleanField(default=False)


class ComparisonsFileIn(serializers.Serializer[Any]):
    """Comparisons as a JSONL file: one comparison a line, the fields of an element of `comparisons`."""

    file = serializers.FileField(
        allow_empty_file=True, help_text="JSONL, one comparison a line; up to IMPORT_MAX_MB."
    )  # an empty file is refused by the import, as a 422
    skip_bad_lines = serializers.BooleanField(default=False)


class ComparisonListOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    external_id = Text()
    messages = serializers.ListField(child=serializers.DictField())
    candidates = serializers.ListField(child=serializers.DictField(), help_text="Content and provenance.")
    gold = serializers.JSONField(allow_null=True)
    state = Text()
    metadata = serializers.DictField()


class ComparisonFilter(StrictFilterSet):
    gold = BooleanFilter(method="filter_gold", help_text="true: gold items only; false: no gold items")
    state = django_filters.ChoiceFilter(choices=ItemState.choices)
    created_after = at_or_after("created_at")
    created_before = before("created_at")

    def filter_gold(self, rows: QuerySet[Item], name: str, value: bool) -> QuerySet[Item]:
        return rows.filter(gold__isnull=not value)


@extend_schema_view(get=extend_schema(summary="Comparisons of a project with provenance and gold answers (data leads)"))
class ComparisonsCreateView(ListView):
    serializer_class = ComparisonListOut
    filterset_class = ComparisonFilter
    queryset = Item.objects.none()
    # A JSON list (nested lists and objects: JSON, not a form) or a JSONL file (multipart) for bulk loads.
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        request={"application/json": ComparisonsInSchema, "multipart/form-data": ComparisonsFileIn},
        responses=IMPORT_RESPONSES,
        summary="Create comparisons (data leads): validated, PII-scrubbed and numbered like a JSONL import",
        description=(
            "Each element of `comparisons` has the fields of a line of the comparison JSONL import "
            "(`prompt` or `messages`, `candidates` with `content` and provenance, optional `gold`, `id`, "
            "`metadata`). The list goes through the same import as a file: element n is line n of the report, "
            "and one bad element refuses the whole request (422, `status` `refused`, nothing created) unless "
            "`skip_bad_lines` is set. A JSON body may be up to 2.5 MiB (about 3,000 comparisons; larger "
            "answers 413). For bulk loads send a JSONL file instead, as `multipart/form-data` with the field "
            "`file` (up to IMPORT_MAX_MB, default 1 GiB: 100,000 comparisons in one call): it streams to disk, "
            "and a file over 2 MiB is imported by a worker (202: poll `status_url`, which shows `progress`). "
            "A project that holds conversations to annotate (SFT) takes no comparisons: 400 naming `fmt`."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        annotation_services.import_format_check(project=project, fmt=ImportFormat.COMPARISON_JSONL)
        if request.content_type.startswith("multipart/"):
            file_data = ComparisonsFileIn(data=request.data)
            file_data.is_valid(raise_exception=True)
            upload = file_data.validated_data["file"]
            source_name = upload.name or "comparisons.jsonl"
            skip_bad_lines = file_data.validated_data["skip_bad_lines"]
        else:
            data = ComparisonsIn(data=request.data)
            data.is_valid(raise_exception=True)
            lines = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in data.validated_data["comparisons"])
            upload = SimpleUploadedFile("api.jsonl", lines.encode(), content_type="application/x-ndjson")
            source_name = f"API request by {request_user(request).username}"
            skip_bad_lines = data.validated_data["skip_bad_lines"]
        batch = annotation_services.import_start(
            actor=request_user(request),
            project=project,
            upload=upload,
            source_name=source_name,
            fmt=ImportFormat.COMPARISON_JSONL,
            skip_bad_lines=skip_bad_lines,
        )
        return import_response(request, batch)

    def get_queryset(self) -> QuerySet[Item]:
        project = get_project_for_user(self.request.user, self.kwargs["pk"], ProjectPerm.MANAGE_DATA)
        return Item.objects.filter(project=project, kind=COMPARISON).order_by("id")
