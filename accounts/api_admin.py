"""REST API for setting Enclave up without a browser: sign in for a token, create and rename projects, invite
people (site staff onto the site, project admins onto their project) and deactivate accounts. Each view calls
the service the matching page calls."""

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.api import STAFF_ONLY, ApiTokenCreatedOut, ProjectDetailView, ProjectListView, ProjectOut
from accounts.models import ProjectPerm, Role, User
from accounts.permissions import get_project_for_user, get_user_for_staff, request_user, require_site_staff
from core.errors import DomainError
from core.fields import Text
from core.lists import ListView

# --- Sign-in: username and password for a token ----------------------------------------------------------


class SignInIn(serializers.Serializer[Any]):
    username = Text(max_length=150)
    password = Text(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    name = Text(max_length=100, default="API sign-in", help_text="What the token is for; shown on the API tokens page.")
    days = serializers.IntegerField(min_value=1, max_value=365, default=90, help_text="Days until it expires.")


class SignInView(APIView):
    """The login page's rules, without a browser: ``django.contrib.auth.authenticate`` runs through
    django-axes, so failures count towards the same lockout (by username), a locked-out account is refused
    before its password is checked, and logins, failures and lockouts are audited by the same receivers."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=SignInIn,
        responses={
            201: ApiTokenCreatedOut,
            401: OpenApiResponse(description="Wrong username or password, or a deactivated account."),
            429: OpenApiResponse(description="Locked after too many failures; Retry-After says for how long."),
        },
        auth=[],
        summary="Sign in: exchange a username and password for an API token (shown once)",
        description="Under the login page's lockout rules: after `LOGIN_FAILURE_LIMIT` failures an account is "
        "locked for `LOGIN_LOCKOUT_MINUTES` and every attempt answers 429 without checking the password. Wrong "
        "credentials (or a deactivated account) answer 401. Send the token as `Authorization: Token <token>`.",
        examples=[
            OpenApiExample(
                "Sign in",
                value={
                    "username": "dana",
                    "password": "correct horse battery staple",
                    "name": "nightly export",
                    "days": 30,
                },
                request_only=True,
            ),
            OpenApiExample(
                "Token",
                value={
                    "token_key": "enclave_3f9a1c2b",
                    "name": "nightly export",
                    "created": "2026-12-04T10:00:00Z",
                    "expiry": "2027-01-03T10:00:00Z",
                    "last_used_at": None,
                    "token": "enclave_3f9a1c2b5d…(shown once)",
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        data = SignInIn(data=request.data)
        data.is_valid(raise_exception=True)
        django_request = request._request
        user = authenticate(
            django_request, username=data.validated_data["username"], password=data.validated_data["password"]
        )
        if getattr(django_request, "axes_locked_out", False):
            # Answer here in JSON; AxesMiddleware would otherwise swap in the login page's HTML lockout page.
            django_request.axes_locked_out = False  # type: ignore[attr-defined]
            minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
            return Response(
                {
                    "detail": f"Too many failed sign-ins: this account is locked for {minutes} minutes after the "
                    "last attempt. Ask site staff to unlock it sooner.",
                    "field": "username",
                },
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(int(settings.AXES_COOLOFF_TIME.total_seconds()))},
            )
        if not isinstance(user, User):
            return Response(
                {"detail": "Wrong username or password (or the account is deactivated)."},
                status=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": "Token"},
            )
        user_logged_in.send(sender=user.__class__, request=django_request, user=user)
        token, raw = services.api_token_create(
            user=user, name=data.validated_data["name"], days=data.validated_data["days"], via="sign-in"
        )
        token.raw_token = raw  # the only moment the secret exists outside the caller's hands
        return Response(ApiTokenCreatedOut(token).data, status=status.HTTP_201_CREATED)


# --- Projects --------------------------------------------------------------------------------------------


class ProjectCreateIn(serializers.Serializer[Any]):
    name = Text(max_length=200)
    description = Text(required=False, allow_blank=True, default="")
    admin = Text(
        required=False, allow_null=True, default=None, help_text="Username of the first project admin (optional)."
    )


class ProjectUpdateIn(serializers.Serializer[Any]):
    name = Text(max_length=200, required=False)
    description = Text(required=False, allow_blank=True)


PROJECT_EXAMPLE = {"id": 7, "name": "Retail support", "description": "Card and account questions",
                   "role": None, "member_count": 1, "created_at": "2026-12-04T10:00:00Z"}  # fmt: skip


class ProjectListCreateView(ProjectListView):
    @extend_schema(
        request=ProjectCreateIn,
        responses={
            201: ProjectOut,
            404: OpenApiResponse(description="Not site staff (answered as a missing address), or no active `admin`."),
            409: OpenApiResponse(description="Another project has this name."),
        },
        summary="Create a project (site staff), optionally with its first project admin",
        examples=[
            OpenApiExample(
                "New project",
                value={"name": "Retail support", "description": "Card and account questions", "admin": "dana"},
                request_only=True,
            ),
            OpenApiExample("Created", value=PROJECT_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def post(self, request: Request) -> Response:
        require_site_staff(request.user)
        data = ProjectCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if values["admin"]:
            values["admin"] = User.objects.filter(username=values["admin"], is_active=True).first()
            if values["admin"] is None:
                raise DomainError("No active user with this username.", field="admin", status=404)
        project = services.project_create(actor=request_user(request), **values)
        annotated = selectors.projects_for_user(request.user).get(pk=project.pk)
        return Response(ProjectOut(annotated).data, status=status.HTTP_201_CREATED)


class ProjectDetailUpdateView(ProjectDetailView):
    @extend_schema(
        request=ProjectUpdateIn,
        responses={200: ProjectOut, 409: OpenApiResponse(description="Another project has this name.")},
        summary="Rename a project or change its description (project admins and site staff)",
        examples=[OpenApiExample("Rename", value={"name": "Retail support (DE)"}, request_only=True)],
    )
    def patch(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_MEMBERS)
        data = ProjectUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.project_update(actor=request_user(request), project=project, **data.validated_data)
        annotated = selectors.projects_for_user(request.user).get(pk=project.pk)
        return Response(ProjectOut(annotated).data)


# --- Users and invitations -------------------------------------------------------------------------------


class UserOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    username = Text()
    display_name = Text()
    email = Text(help_text="Empty when none is on record.")
    is_staff = serializers.BooleanField()
    is_active = serializers.BooleanField()
    has_password = serializers.SerializerMethodField(help_text="False until the invite link was used.")
    directory = serializers.CharField(
        help_text="Where the account signs in: empty for a local password, `oidc` or `ldap` for the organisation's "
        "identity provider (its staff flag and directory memberships follow the group mappings)."
    )
    project_count = serializers.IntegerField(required=False)
    last_login = serializers.DateTimeField(allow_null=True)
    date_joined = serializers.DateTimeField()

    def get_has_password(self, user: User) -> bool:
        return user.has_usable_password()


class InvitedOut(UserOut):
    invite_link = serializers.URLField(
        help_text="One-time link to hand to the person: it sets their password, and stops working once one is set "
        "or after INVITE_TIMEOUT_HOURS. Shown only in this response."
    )


class UserInviteIn(serializers.Serializer[Any]):
    username = Text(max_length=150)
    display_name = Text(max_length=150, required=False, allow_blank=True, default="")
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class StaffInviteIn(UserInviteIn):
    is_staff = serializers.BooleanField(required=False, default=False, help_text="Manages accounts and every project.")


class MemberInviteIn(UserInviteIn):
    role = serializers.ChoiceField(choices=Role.choices)


class UserActiveIn(serializers.Serializer[Any]):
    is_active = serializers.BooleanField(help_text="false deactivates the account and revokes its API tokens.")


INVITED_EXAMPLE = {"id": 12, "username": "lena", "display_name": "Lena K.", "email": "", "is_staff": False,
                   "is_active": True, "has_password": False, "last_login": None, "date_joined": "2026-12-04T10:00:00Z",
                   "invite_link": "https://enclave.bank.internal/invite/MTI/c8v1x4-0f3e…/"}  # fmt: skip


_TAKEN = OpenApiResponse(description="The username is taken.")


def _invited(request: Request, user: User) -> Response:
    user.invite_link = request.build_absolute_uri(selectors.invite_path(user))  # type: ignore[attr-defined]
    return Response(InvitedOut(user).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(
        responses={200: UserOut(many=True), 404: STAFF_ONLY},
        summary="Every account (site staff)",
        examples=[
            OpenApiExample(
                "Accounts",
                value={"count": 1, "next": None, "previous": None, "results": [
                    {**{k: v for k, v in INVITED_EXAMPLE.items() if k != "invite_link"}, "project_count": 2}]},
                response_only=True,
            )
        ],
    )
)  # fmt: skip
class UserListView(ListView):
    serializer_class = UserOut

    def get_queryset(self) -> QuerySet[User]:
        require_site_staff(self.request.user)
        return selectors.users_for_staff()

    @extend_schema(
        request=StaffInviteIn,
        responses={201: InvitedOut, 404: STAFF_ONLY, 409: _TAKEN},
        summary="Invite a person (site staff): an account without a password and its one-time invite link",
        examples=[
            OpenApiExample("Invite", value={"username": "lena", "display_name": "Lena K."}, request_only=True),
            OpenApiExample("Invited", value=INVITED_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def post(self, request: Request) -> Response:
        require_site_staff(request.user)
        data = StaffInviteIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_create(actor=request_user(request), **data.validated_data)
        return _invited(request, user)


class UserDetailView(APIView):
    @extend_schema(
        responses=UserOut,
        summary="One account (site staff)",
        examples=[
            OpenApiExample(
                "Account", value={k: v for k, v in INVITED_EXAMPLE.items() if k != "invite_link"}, response_only=True
            )
        ],
    )
    def get(self, request: Request, user_pk: int) -> Response:
        return Response(UserOut(get_user_for_staff(request.user, user_pk)).data)

    @extend_schema(
        request=UserActiveIn,
        responses={200: UserOut, 409: OpenApiResponse(description="Staff cannot deactivate their own account.")},
        summary="Deactivate (or activate again) an account (site staff); deactivating revokes its API tokens",
        examples=[OpenApiExample("Deactivate", value={"is_active": False}, request_only=True)],
    )
    def patch(self, request: Request, user_pk: int) -> Response:
        user = get_user_for_staff(request.user, user_pk)
        data = UserActiveIn(data=request.data, partial=True)  # a PATCH: what is left out stays as it is
        data.is_valid(raise_exception=True)
        if "is_active" in data.validated_data:
            user = services.user_set_active(
                actor=request_user(request), user=user, active=data.validated_data["is_active"]
            )
        return Response(UserOut(user).data)


class MemberInviteView(APIView):
    @extend_schema(
        request=MemberInviteIn,
        responses={201: InvitedOut, 409: _TAKEN},
        summary="Invite a new person straight into the project with a role (project admins), with the invite link",
        examples=[
            OpenApiExample("Invite an annotator", value={"username": "lena", "role": "annotator"}, request_only=True),
            OpenApiExample("Invited", value=INVITED_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_MEMBERS)
        data = MemberInviteIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_invite(actor=request_user(request), project=project, **data.validated_data)
        return _invited(request, user)
