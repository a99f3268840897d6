"""API for site staff: the mappings of directory groups to site staff and project roles."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import identity, selectors
from accounts.api import STAFF_ONLY
from accounts.models import GroupMapping, Project, Role
from accounts.permissions import get_group_mapping_for_staff, request_user, require_site_staff
from core.errors import DomainError
from core.fields import Text
from core.lists import ListView


class GroupMappingOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    group = Text(help_text="As the directory sends it: a value of the OIDC groups claim, or an LDAP group's cn.")
    grants = serializers.SerializerMethodField(help_text="`site_staff`, or `role` in `project`.")
    project = serializers.IntegerField(source="project_id", allow_null=True)
    project_name = serializers.SerializerMethodField()
    role = Text(help_text="The role in the project; empty for site staff.")
    created_at = serializers.DateTimeField()
    created_by = serializers.SerializerMethodField()

    def get_grants(self, mapping: GroupMapping) -> str:
        return "site_staff" if mapping.grants_staff else "role"

    def get_project_name(self, mapping: GroupMapping) -> str | None:
        return mapping.project.name if mapping.project else None

    def get_created_by(self, mapping: GroupMapping) -> str | None:
        return mapping.created_by.username if mapping.created_by else None


class GroupMappingIn(serializers.Serializer[Any]):
    group = Text(max_length=255)
    project = serializers.IntegerField(
        required=False, allow_null=True, help_text="Leave out (or null) to make the group's members site staff."
    )
    role = serializers.ChoiceField(choices=Role.choices, required=False, allow_blank=True)


EXAMPLE = {
    "id": 3,
    "group": "enclave-retail-reviewers",
    "grants": "role",
    "project": 1,
    "project_name": "Retail banking support",
    "role": "reviewer",
    "created_at": "2026-12-06T09:00:00Z",
    "created_by": "staff",
}


class GroupMappingListView(ListView):
    serializer_class = GroupMappingOut

    @extend_schema(
        responses={200: GroupMappingOut(many=True), 404: STAFF_ONLY},
        summary="Group mappings (site staff): which directory groups make site staff or give a role",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[GroupMapping]:
        require_site_staff(self.request.user)
        return selectors.group_mappings()

    @extend_schema(
        request=GroupMappingIn,
        responses={
            201: GroupMappingOut,
            404: STAFF_ONLY,
            409: OpenApiResponse(description="The group is mapped for that project (or for site staff) already."),
        },
        summary="Map a directory group to site staff or to a role in a project (site staff); it applies at each "
        "member's next sign-in or re-check",
        examples=[
            OpenApiExample(
                "A role",
                value={"group": "enclave-retail-reviewers", "project": 1, "role": "reviewer"},
                request_only=True,
            ),
            OpenApiExample("Site staff", value={"group": "enclave-admins"}, request_only=True),
            OpenApiExample("Mapped", value=EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def post(self, request: Request) -> Response:
        require_site_staff(request.user)
        data = GroupMappingIn(data=request.data)
        data.is_valid(raise_exception=True)
        project_id = data.validated_data.get("project")
        project = None
        if project_id is not None:
            project = Project.objects.filter(pk=project_id).first()
            if project is None:
                raise DomainError("No such project.", field="project")
        mapping = identity.group_mapping_create(
            actor=request_user(request),
            group=data.validated_data["group"],
            project=project,
            role=data.validated_data.get("role", ""),
        )
        return Response(GroupMappingOut(mapping).data, status=status.HTTP_201_CREATED)


class GroupMappingDetailView(APIView):
    @extend_schema(responses={200: GroupMappingOut, 404: STAFF_ONLY}, summary="One group mapping (site staff)")
    def get(self, request: Request, mapping_pk: int) -> Response:
        return Response(GroupMappingOut(get_group_mapping_for_staff(request.user, mapping_pk)).data)

    @extend_schema(
        responses={204: None, 404: STAFF_ONLY},
        summary="Remove a group mapping (site staff); members lose what it gave at their next sign-in or re-check",
    )
    def delete(self, request: Request, mapping_pk: int) -> Response:
        mapping = get_group_mapping_for_staff(request.user, mapping_pk)
        identity.group_mapping_delete(actor=request_user(request), mapping=mapping)
        return Response(status=status.HTTP_204_NO_CONTENT)
