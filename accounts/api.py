"""REST API of the accounts app under /api/v1/: who am I, projects, members, API tokens, audit events."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import AuditEvent, Membership, Project, ProjectPerm, Role, User
from accounts.permissions import (
    get_membership_for_user,
    get_own_api_token,
    get_project_for_user,
    is_site_staff,
    request_user,
    require_site_staff,
)
from core.errors import DomainError
from core.fields import Text
from core.lists import ListView

# Routes for site staff only answer anyone else as if they did not exist (as a missing object does).
STAFF_ONLY = OpenApiResponse(description="Not site staff: answered as for an address that does not exist.")


class MeOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = Text()
    display_name = Text()
    email = Text(help_text="Empty when none is on record.")
    is_staff = serializers.BooleanField()


class MeView(APIView):
    @extend_schema(responses=MeOut, summary="The authenticated user")
    def get(self, request: Request) -> Response:
        user = request_user(request)
        me = {
            "id": user.pk,
            "username": user.username,
            "display_name": user.display_name,
            "email": user.email,
            "is_staff": is_site_staff(user),
        }
        return Response(MeOut(me).data)


class ProjectOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = Text()
    description = Text()
    role = serializers.ChoiceField(choices=Role.choices, allow_null=True, help_text="Your role; null for staff.")
    member_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()


@extend_schema_view(get=extend_schema(summary="Projects you can see, with your role in each"))
class ProjectListView(ListView):
    serializer_class = ProjectOut

    def get_queryset(self) -> QuerySet[Project]:
        return selectors.projects_for_user(self.request.user)


class ProjectDetailView(APIView):
    @extend_schema(responses=ProjectOut, summary="One project (404 if you are not a member)")
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk)
        annotated = selectors.projects_for_user(request.user).get(pk=project.pk)
        return Response(ProjectOut(annotated).data)


class MemberOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = Text(source="user.username")
    display_name = Text(source="user.display_name")
    role = serializers.ChoiceField(choices=Role.choices)
    created_at = serializers.DateTimeField()


class MemberAddIn(serializers.Serializer):
    username = Text()
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRoleIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


@extend_schema_view(get=extend_schema(summary="Members of a project (project admins)"))
class MemberListView(ListView):
    serializer_class = MemberOut

    def get_queryset(self) -> QuerySet[Membership]:
        project = get_project_for_user(self.request.user, self.kwargs["pk"], ProjectPerm.MANAGE_MEMBERS)
        return selectors.project_members(project)

    @extend_schema(
        request=MemberAddIn,
        responses={
            201: MemberOut,
            404: OpenApiResponse(description="No such project (or not yours to manage), or no user of that username."),
            409: OpenApiResponse(description="Already a member, or the account is deactivated."),
        },
        summary="Add an existing user to a project",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_MEMBERS)
        data = MemberAddIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = User.objects.filter(username=data.validated_data["username"]).first()
        if user is None:
            raise DomainError("No user with this username.", field="username", status=404)
        membership = services.membership_add(
            actor=request_user(request), project=project, user=user, role=data.validated_data["role"]
        )
        return Response(MemberOut(membership).data, status=status.HTTP_201_CREATED)


_LAST_ADMIN = OpenApiResponse(description="The project's last active project admin stays one.")


class MemberDetailView(APIView):
    @extend_schema(
        request=MemberRoleIn,
        responses={200: MemberOut, 409: _LAST_ADMIN},
        summary="Change a member's role",
    )
    def patch(self, request: Request, pk: int, membership_pk: int) -> Response:
        membership = get_membership_for_user(request.user, pk, membership_pk)
        data = MemberRoleIn(data=request.data, partial=True)  # a PATCH: what is left out stays as it is
        data.is_valid(raise_exception=True)
        if "role" in data.validated_data:
            membership = services.membership_change_role(
                actor=request_user(request), membership=membership, role=data.validated_data["role"]
            )
        return Response(MemberOut(membership).data)

    @extend_schema(responses={204: None, 409: _LAST_ADMIN}, summary="Remove a member")
    def delete(self, request: Request, pk: int, membership_pk: int) -> Response:
        membership = get_membership_for_user(request.user, pk, membership_pk)
        services.membership_remove(actor=request_user(request), membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventOut(serializers.ModelSerializer):
    actor = Text(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = [
            "seq",
            "created_at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "project_id",
            "payload",
            "prev_hash",
            "hash",
        ]


class AuditFilterIn(serializers.Serializer):
    action = Text(required=False, default="", allow_blank=True, help_text="Prefix, e.g. `membership.`")
    actor = Text(required=False, default="", allow_blank=True, help_text="Username")
    object_type = Text(required=False, default="", allow_blank=True)
    since = serializers.DateTimeField(required=False, default=None)
    until = serializers.DateTimeField(required=False, default=None)


AUDIT_PARAMS = [
    OpenApiParameter("action", str, description="Action prefix, e.g. `membership.`"),
    OpenApiParameter("actor", str, description="Username of the actor"),
    OpenApiParameter("object_type", str),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601 date-time, inclusive"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="ISO 8601 date-time, exclusive"),
]


# The audit page's filters: read with ``AuditFilterIn`` once the backend has refused unknown names, and applied
# by the selector the page uses.
class _AuditEventList(ListView):
    serializer_class = AuditEventOut
    filter_params = tuple(AuditFilterIn().fields)

    def audit_project(self) -> Project | None:
        """The project whose events these are (None: every event); 404 for a project the caller may not audit."""
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[AuditEvent]:
        self.project = self.audit_project()
        return selectors.audit_events(project=self.project, filters=selectors.AuditFilter())

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        super().filter_queryset(queryset)
        filters = AuditFilterIn(data=self.request.query_params.dict())  # `until=` is no date-time, not "none"
        filters.is_valid(raise_exception=True)
        return selectors.audit_events(project=self.project, filters=selectors.AuditFilter(**filters.validated_data))


@extend_schema_view(get=extend_schema(parameters=AUDIT_PARAMS, summary="A project's audit events"))
class ProjectAuditEventListView(_AuditEventList):
    def audit_project(self) -> Project:
        return get_project_for_user(self.request.user, self.kwargs["pk"], ProjectPerm.VIEW_AUDIT)


@extend_schema_view(
    get=extend_schema(parameters=AUDIT_PARAMS, responses={200: AuditEventOut(many=True), 404: STAFF_ONLY},
                      summary="All audit events (staff)")
)  # fmt: skip
class AuditEventListView(_AuditEventList):
    def audit_project(self) -> None:
        require_site_staff(self.request.user)
        return None


class ApiTokenOut(serializers.Serializer):
    token_key = Text(help_text="The token's public prefix, used to revoke it.")
    name = Text(source="info.name")
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(source="info.last_used_at", allow_null=True)


class ApiTokenCreatedOut(ApiTokenOut):
    token = Text(source="raw_token", help_text="The secret. It is shown only in this response.")


class ApiTokenIn(serializers.Serializer):
    name = Text(max_length=100)
    days = serializers.IntegerField(min_value=1, max_value=365, default=90)


@extend_schema_view(get=extend_schema(summary="Your API tokens (never the secrets)"))
class ApiTokenListView(ListView):
    serializer_class = ApiTokenOut

    def get_queryset(self) -> QuerySet[AuthToken]:
        return selectors.api_tokens_for_user(self.request.user)

    @extend_schema(request=ApiTokenIn, responses={201: ApiTokenCreatedOut}, summary="Create an API token")
    def post(self, request: Request) -> Response:
        data = ApiTokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.api_token_create(user=request_user(request), **data.validated_data)
        token.raw_token = raw  # the only moment the secret exists outside the caller's hands
        return Response(ApiTokenCreatedOut(token).data, status=status.HTTP_201_CREATED)


class ApiTokenDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Revoke one of your API tokens")
    def delete(self, request: Request, token_key: str) -> Response:
        token = get_own_api_token(request.user, token_key)
        services.api_token_revoke(actor=request_user(request), token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
