"""REST API of the releases app: define and list releases, read one (manifest, files, leak report), its
datasheet, stream its files, diff two releases, delete (admins). A built release has no update operation."""

from typing import Any

from django.db.models import QuerySet
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
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
from core.filters import BIGINT_MAX, read_query
from core.lists import ListView
from core.marks import MarkField
from releases import selectors, services
from releases.models import Release, ReleaseState
from releases.permissions import (
    get_project_for_releases,
    get_release_file_for_user,
    get_release_for_admin,
    get_release_for_user,
)
from releases.recipe import AGGREGATIONS, LEAK_POLICIES, RANKING_PAIRS, TIE_POLICIES
from releases.views import stream_release_file


class RecipeIn(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["sft", "preference"])
    rubric_versions = serializers.ListField(child=serializers.IntegerField(), required=False)
    tags = serializers.ListField(child=Text(), required=False)
    exclude_flagged_annotators = serializers.BooleanField(required=False, default=True)
    exclude_flags = serializers.ListField(child=Text(), required=False)
    min_agreement = serializers.FloatField(required=False, min_value=0, max_value=1)
    aggregation = serializers.ChoiceField(choices=list(AGGREGATIONS), required=False)
    ties = serializers.ChoiceField(choices=list(TIE_POLICIES), required=False)
    min_strength = serializers.FloatField(required=False, min_value=0, max_value=3)
    ranking_pairs = serializers.ChoiceField(choices=list(RANKING_PAIRS), required=False)
    per_criterion = serializers.BooleanField(required=False, default=False)
    eval_fraction = serializers.FloatField(required=False, min_value=0, max_value=0.5)
    leakage = serializers.ChoiceField(choices=list(LEAK_POLICIES), required=False)
    near_duplicate_threshold = serializers.FloatField(required=False, min_value=0.5, max_value=1)
    mixin_batches = serializers.ListField(child=serializers.IntegerField(), required=False)
    mixin_fraction = serializers.FloatField(required=False, min_value=0, max_value=0.9)
    paraphrase_threshold = serializers.FloatField(
        required=False, min_value=0, max_value=1,
        help_text="Cosine similarity of prompt embeddings at which a training prompt paraphrases an evaluation "
        "prompt (handled by `leakage` as a near duplicate); 0 turns the check off. Default 0.75.",
    )  # fmt: skip
    stratify_by = serializers.ListField(
        child=Text(), required=False, max_length=3,
        help_text="Item metadata keys (e.g. topic, channel, language): new evaluation items are drawn so that the "
        "evaluation split's share of each stratum follows the project's items.",
    )  # fmt: skip
    stratify_tolerance = serializers.FloatField(
        required=False, min_value=0, max_value=0.5,
        help_text="How far (absolute share) a stratum's evaluation share may be from its target; default 0.05.",
    )  # fmt: skip
    eval_items = serializers.ListField(
        child=serializers.IntegerField(), required=False,
        help_text="Item ids put on the evaluation side whatever their hash (what “Refresh the eval set” sends).",
    )  # fmt: skip


class ReleaseIn(serializers.Serializer[Any]):
    name = Text(max_length=100)
    recipe = RecipeIn()
    assumptions = Text(required=False, allow_blank=True, default="")


class ReleaseFileOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    path = Text()
    fmt = Text()
    split = Text()
    rows = serializers.IntegerField(allow_null=True)
    size_bytes = serializers.IntegerField()
    sha256 = Text()


class ReleaseOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = Text()
    version = serializers.IntegerField()
    kind = Text()
    state = Text()
    progress = serializers.IntegerField()
    progress_note = Text()
    failure_reason = Text()
    hash = Text()
    recipe = serializers.DictField()
    assumptions = Text()
    created_by = Text(source="created_by.username")
    created_at = serializers.DateTimeField()
    built_at = serializers.DateTimeField(allow_null=True)
    deleted_at = serializers.DateTimeField(allow_null=True)
    tainted = MarkField("release", "tainted", help_text="Set when an erasure tainted it: which, why, rebuilt as")


class ReleaseDetailOut(ReleaseOut):
    manifest = serializers.DictField(allow_null=True)
    leak_report = serializers.DictField()
    files = ReleaseFileOut(many=True, source="files.all")


@extend_schema_view(get=extend_schema(summary="The project's releases, newest first"))
class ReleaseListCreateView(ListView):
    serializer_class = ReleaseOut
    parser_classes = [JSONParser]  # the recipe is a nested object: no form encoding can carry it

    def get_queryset(self) -> QuerySet[Release]:
        return selectors.releases_of(get_project_for_releases(self.request.user, self.kwargs["pk"]))

    @extend_schema(
        request=ReleaseIn,
        responses={202: ReleaseOut},
        summary="Define a release and queue its build (data leads)",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        data = ReleaseIn(data=request.data)
        data.is_valid(raise_exception=True)
        recipe = dict(data.validated_data["recipe"])  # checked and typed: "false" is False, not a true string
        release = services.release_create(
            actor=request_user(request),
            project=project,
            name=data.validated_data["name"],
            recipe=recipe,
            assumptions=data.validated_data["assumptions"],
        )
        return Response(ReleaseOut(release).data, status=status.HTTP_202_ACCEPTED)


class ReleaseDeleteQuery(serializers.Serializer[Any]):
    reason = Text(min_length=3, max_length=1000, help_text="Why (into the audit log)")


class ReleaseDetailView(APIView):
    @extend_schema(responses=ReleaseDetailOut, summary="A release: state, hash, manifest, files, leak report")
    def get(self, request: Request, pk: int, release_pk: int) -> Response:
        release = get_release_for_user(request.user, pk, release_pk)
        return Response(ReleaseDetailOut(release).data)

    @extend_schema(
        request=None,
        parameters=[ReleaseDeleteQuery],
        responses={200: ReleaseOut, 409: OpenApiResponse(description="It is still building, or already deleted.")},
        summary="Delete a release (project admins): its files go, a tombstone with its hash stays",
    )
    def delete(self, request: Request, pk: int, release_pk: int) -> Response:
        release = get_release_for_admin(request.user, pk, release_pk)
        reason = read_query(request, ReleaseDeleteQuery)["reason"]
        deleted = services.release_delete(actor=request_user(request), release=release, reason=reason)
        return Response(ReleaseOut(deleted).data)


class DatasheetQuery(serializers.Serializer[Any]):
    as_ = serializers.ChoiceField(
        choices=["json", "md"], required=False, default="json", help_text="json (default) or md (Markdown)"
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        fields["as"] = fields.pop("as_")  # a keyword in Python, the parameter's name on the wire
        return fields


class ReleaseDatasheetView(APIView):
    @extend_schema(
        parameters=[DatasheetQuery],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/markdown"): OpenApiTypes.STR,
            409: OpenApiResponse(description="The release is not built, or its files were deleted with it."),
        },
        summary="The release's datasheet (EU AI Act Art. 10(2)), as JSON or Markdown",
    )
    def get(self, request: Request, pk: int, release_pk: int) -> HttpResponseBase:
        release = get_release_for_user(request.user, pk, release_pk)
        shown_as = read_query(request, DatasheetQuery)["as"]
        if release.datasheet is None:
            raise DomainError("This release has no datasheet yet: it is not built.", status=409)
        if shown_as == "md":
            found = release.files.filter(path="datasheet.md").first()
            if found is None:
                raise DomainError("The datasheet's files were deleted with the release.", status=409)
            return stream_release_file(request._request, found, via="api")
        return Response(release.datasheet)


# What a release's files are sent as: bytes to save, and the datasheet's Markdown as text.
FILE_TYPES = ("application/octet-stream", "text/markdown")


class ReleaseFileView(APIView):
    @extend_schema(
        responses={(200, media_type): OpenApiTypes.BINARY for media_type in FILE_TYPES},
        summary="Stream one file of a built release (ETag: its sha256; If-None-Match answers 304)",
    )
    def get(self, request: Request, pk: int, release_pk: int, file_pk: int) -> HttpResponseBase:
        found = get_release_file_for_user(request.user, pk, release_pk, file_pk)
        return stream_release_file(request._request, found, via="api")


class ReleaseDiffQuery(serializers.Serializer[Any]):
    a = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, help_text="id of a built release: from")
    b = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, help_text="id of a built release: to")


class ReleaseDiffView(APIView):
    @extend_schema(
        parameters=[ReleaseDiffQuery],
        responses={
            200: OpenApiTypes.OBJECT,
            404: OpenApiResponse(description="No such project (or not yours), or no release `a` or `b` in it."),
            409: OpenApiResponse(description="Release `a` or `b` is not built (or was deleted)."),
        },
        summary="What changed between two built releases: added, removed, changed, flips, split moves",
    )
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_releases(request.user, pk)
        ids = read_query(request, ReleaseDiffQuery)
        found: list[Release] = []
        for key in ("a", "b"):
            release = selectors.releases_of(project).filter(pk=ids[key]).first()
            if release is None:
                raise DomainError(f"“{key}” names no release of this project.", field=key, status=404)
            if release.state != ReleaseState.BUILT:
                raise DomainError(f"“{key}” names a release that is {release.state}, not built.", field=key, status=409)
            found.append(release)
        return Response(selectors.release_diff(found[0], found[1]))
