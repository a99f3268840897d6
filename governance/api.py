"""REST API of the governance app: export an adapter's signed dossier; preview and erase (the term travels in the
body, never in the address), list and read erasures with their taint report, rebuild a tainted release without the
erased items, and read or change a project's retention policy."""

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

from accounts.permissions import request_user
from core.fields import Text
from core.lists import ListView
from governance import selectors, services
from governance.matching import MAX_TERM, Matcher
from governance.models import Erasure, MatchMode, RetentionPolicy
from governance.permissions import (
    get_adapter_for_dossier,
    get_erasure_for_user,
    get_project_for_retention,
    get_release_for_rebuild,
    require_erasure_rights,
)
from governance.retention import policy_for
from governance.views import zip_response


class AdapterDossierView(APIView):
    @extend_schema(
        request=None,
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The dossier as a zip: one folder dossier-adapter-<id>/ with dossier.html, dossier.pdf, "
                "dossier.json, every file it cites, manifest.json, manifest.sig, public_key.pem and "
                "verify_dossier.py (run it with Python and the cryptography package).",
            ),
            404: OpenApiResponse(description="No such adapter, or not a project admin (view_project_audit) or staff."),
        },
        summary="Export an adapter's signed dossier (EU AI Act Art. 10(2) and 12); the export is audited",
    )
    def post(self, request: Request, pk: int, adapter_pk: int) -> HttpResponseBase:
        adapter = get_adapter_for_dossier(request.user, pk, adapter_pk)
        archive = services.dossier_zip(actor=request_user(request), adapter=adapter)
        return zip_response(archive, f"dossier-adapter-{adapter.pk}.zip")


PREVIEW_ROWS = 1000
NO_DATA_RIGHTS = OpenApiResponse(description="The caller manages the data of no project (answers as if missing).")


class SearchIn(serializers.Serializer[Any]):
    match_mode = serializers.ChoiceField(choices=MatchMode.choices, source="mode", help_text="exact or pattern")
    term = serializers.CharField(max_length=MAX_TERM, trim_whitespace=False, help_text="Exact text or pattern")


class EraseIn(SearchIn):
    reason = Text(max_length=2000, help_text="Why (into the audit log); must not hold the erased text")
    request_key = serializers.CharField(
        max_length=64, help_text="A key of your choice: resending it returns the erasure"
    )


class HitOut(serializers.Serializer[Any]):
    project = serializers.IntegerField(source="project_id")
    object = serializers.CharField(source="object_label")
    table = serializers.CharField(source="source.name")
    id = serializers.IntegerField(source="pk")
    field = serializers.CharField()
    item = serializers.IntegerField(source="item_id", allow_null=True)
    matches = serializers.IntegerField()
    before = serializers.CharField()
    match = serializers.CharField(help_text="The matched text (shown to you; never stored)")
    after = serializers.CharField()


class FileHitOut(serializers.Serializer[Any]):
    name = serializers.CharField()
    matches = serializers.IntegerField()


class PreviewOut(serializers.Serializer[Any]):
    matches = serializers.IntegerField()
    database_matches = serializers.IntegerField(source="found.matches")
    hits = HitOut(many=True)
    more_hits = serializers.IntegerField()
    files = FileHitOut(many=True)
    unsearched_files = serializers.IntegerField()


class TaintOut(serializers.Serializer[Any]):
    kind = serializers.CharField()
    id = serializers.IntegerField(source="object_id")
    project = serializers.IntegerField(source="project_id")
    name = serializers.CharField(source="label")
    why = serializers.CharField()
    rebuilt_as = serializers.IntegerField(source="rebuilt_as_id", allow_null=True)


class ErasureOut(serializers.Serializer[Any]):  # match_mode: "mode" names another choice set in the schema
    id = serializers.IntegerField()
    state = serializers.CharField()
    failure = serializers.CharField()
    actor = serializers.CharField(source="actor.username")
    reason = serializers.CharField()
    match_mode = serializers.CharField(source="mode")
    term_hmac = serializers.CharField()
    database_matches = serializers.IntegerField()
    file_matches = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    items = serializers.ListField(child=serializers.IntegerField())
    files = serializers.ListField(child=serializers.DictField())
    report = serializers.DictField(child=serializers.ListField(child=serializers.DictField()))
    created_at = serializers.DateTimeField()


class ErasureDetailOut(ErasureOut):
    taints = serializers.SerializerMethodField()

    def get_taints(self, erasure: Erasure) -> list[dict[str, Any]]:
        return list(TaintOut(selectors.taints_of(erasure), many=True).data)


class ErasurePreviewView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=SearchIn,
        responses={200: PreviewOut, 404: NO_DATA_RIGHTS},
        summary="Every match of a text or pattern; changes nothing",
    )
    def post(self, request: Request) -> Response:
        project_ids = require_erasure_rights(request.user)
        data = SearchIn(data=request.data)
        data.is_valid(raise_exception=True)
        matcher = Matcher.checked(data.validated_data["mode"], data.validated_data["term"])
        preview = services.erasure_preview(matcher=matcher, project_ids=project_ids)
        body = {
            "matches": preview.matches,
            "found": preview.found,
            "hits": preview.found.hits[:PREVIEW_ROWS],
            "more_hits": max(0, len(preview.found.hits) - PREVIEW_ROWS),
            "files": preview.files,
            "unsearched_files": len(preview.unsearched),
        }
        return Response(PreviewOut(body).data)


@extend_schema_view(get=extend_schema(summary="Erasures the caller may see, newest first"))
class ErasureListCreateView(ListView):
    serializer_class = ErasureOut
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[Erasure]:
        return selectors.erasures_for_user(self.request.user)  # none without data rights

    @extend_schema(
        request=EraseIn,
        responses={201: ErasureDetailOut, 404: NO_DATA_RIGHTS},
        summary="Erase every match (data leads, admins)",
    )
    def post(self, request: Request) -> Response:
        project_ids = require_erasure_rights(request.user)
        data = EraseIn(data=request.data)
        data.is_valid(raise_exception=True)
        erasure = services.erasure_erase(actor=request_user(request), project_ids=project_ids, **data.validated_data)
        return Response(ErasureDetailOut(erasure).data, status=status.HTTP_201_CREATED)


class ErasureDetailView(APIView):
    @extend_schema(responses=ErasureDetailOut, summary="An erasure: counts, rewritten files, what must be rebuilt")
    def get(self, request: Request, erasure_pk: int) -> Response:
        return Response(ErasureDetailOut(get_erasure_for_user(request.user, erasure_pk)).data)


class RebuildOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    state = serializers.CharField()
    rebuild_of = serializers.IntegerField()


class ReleaseRebuildWithoutErasedView(APIView):
    @extend_schema(request=None, responses={202: RebuildOut}, summary="Rebuild a tainted release without erased items")
    def post(self, request: Request, pk: int, release_pk: int) -> Response:
        release = get_release_for_rebuild(request.user, pk, release_pk)
        rebuilt = services.erasure_release_rebuild(actor=request_user(request), release=release)
        body = {"id": rebuilt.pk, "name": rebuilt.name, "version": rebuilt.version, "state": rebuilt.state,
                "rebuild_of": release.pk}  # fmt: skip
        return Response(RebuildOut(body).data, status=status.HTTP_202_ACCEPTED)


class RetentionSerializer(serializers.Serializer[Any]):
    import_upload_days = serializers.IntegerField(min_value=1, max_value=3650, allow_null=True, required=False)
    failed_job_days = serializers.IntegerField(min_value=1, max_value=3650, allow_null=True, required=False)
    orphaned_draft_days = serializers.IntegerField(min_value=1, max_value=3650, allow_null=True, required=False)


class RetentionOut(RetentionSerializer):
    last_swept_at = serializers.DateTimeField(allow_null=True)
    last_sweep = serializers.DictField(child=serializers.IntegerField())


class RetentionView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses=RetentionOut, summary="The project's retention policy (days; null: kept)")
    def get(self, request: Request, pk: int) -> Response:
        return Response(RetentionOut(policy_for(get_project_for_retention(request.user, pk))).data)

    @extend_schema(request=RetentionSerializer, responses=RetentionOut, summary="Change the retention policy")
    def patch(self, request: Request, pk: int) -> Response:
        project = get_project_for_retention(request.user, pk)
        data = RetentionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy: RetentionPolicy = services.retention_policy_update(
            actor=request_user(request), project=project, values=dict(data.validated_data)
        )
        return Response(RetentionOut(policy).data)
