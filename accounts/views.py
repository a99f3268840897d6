"""htmx pages of the accounts app: dashboard, projects, members, users, API tokens, audit log."""

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.contrib.auth.tokens import default_token_generator
from django.core.paginator import Paginator
from django.db import connection
from django.forms import Form
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import (
    ApiTokenForm,
    AuditFilterForm,
    InviteForm,
    LoginForm,
    MemberAddForm,
    ProjectCreateForm,
    RoleForm,
    StaffInviteForm,
)
from accounts.models import ProjectPerm, User
from accounts.permissions import (
    get_membership_for_user,
    get_own_api_token,
    get_project_for_user,
    get_user_for_staff,
    request_user,
    require_site_staff,
)
from core.errors import DomainError
from core.http import is_htmx, parse_id


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True


def _form_error(form: Form, exc: DomainError) -> None:
    """Show a service's refusal next to the field it names, or above the form."""
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and compose healthchecks: the process answers and the database does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_for_user(request.user)
    return render(request, "accounts/dashboard.html", {"projects": projects})


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    require_site_staff(request.user)
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(
                actor=request_user(request),
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                admin=form.cleaned_data["admin"],
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("project_detail", pk=project.pk)
    return render(request, "accounts/project_form.html", {"form": form})


def _members_page(
    request: HttpRequest,
    project_pk: int,
    *,
    add_form: MemberAddForm | None = None,
    invite_form: InviteForm | None = None,
    invited: User | None = None,
    status: int = 200,
) -> HttpResponse:
    project = get_project_for_user(request.user, project_pk, ProjectPerm.MANAGE_MEMBERS)
    addable = selectors.users_addable_to(project)
    return render(
        request,
        "accounts/members.html",
        {
            "project": project,
            "members": selectors.project_members(project),
            "add_form": add_form or MemberAddForm(users=addable),
            "invite_form": invite_form or InviteForm(),
            "role_choices": RoleForm.base_fields["role"].choices,  # type: ignore[attr-defined]
            "invited": invited,
            "invite_link": request.build_absolute_uri(selectors.invite_path(invited)) if invited else None,
        },
        status=status,
    )


@login_required
@require_GET
def project_members(request: HttpRequest, pk: int) -> HttpResponse:
    return _members_page(request, pk)


@login_required
@require_POST
def member_add(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_MEMBERS)
    form = MemberAddForm(request.POST, users=selectors.users_addable_to(project))
    if form.is_valid():
        try:
            membership = services.membership_add(
                actor=request_user(request),
                project=project,
                user=form.cleaned_data["user"],
                role=form.cleaned_data["role"],
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"{membership.user.username} added as {membership.get_role_display()}.")
            return redirect("project_members", pk=project.pk)
    return _members_page(request, pk, add_form=form, status=400)


@login_required
@require_POST
def member_invite(request: HttpRequest, pk: int) -> HttpResponse:
    """Create an account straight into the project and show its one-time invite link."""
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_MEMBERS)
    form = InviteForm(request.POST)
    role_form = RoleForm(request.POST)
    if form.is_valid() and role_form.is_valid():
        try:
            user = services.user_invite(
                actor=request_user(request),
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                display_name=form.cleaned_data["display_name"],
                project=project,
                role=role_form.cleaned_data["role"],
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            return _members_page(request, pk, invited=user)
    if not role_form.is_valid():
        form.add_error(None, "Choose a role.")
    return _members_page(request, pk, invite_form=form, status=400)


@login_required
@require_POST
def member_change_role(request: HttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    membership = get_membership_for_user(request.user, pk, membership_pk)
    form = RoleForm(request.POST)
    error = None
    if not form.is_valid():
        error = "Choose one of the listed roles."
    else:
        try:
            membership = services.membership_change_role(
                actor=request_user(request), membership=membership, role=form.cleaned_data["role"]
            )
        except DomainError as exc:
            error = exc.message
            membership.refresh_from_db()
    context = {
        "project": membership.project,
        "m": membership,
        "role_choices": RoleForm.base_fields["role"].choices,  # type: ignore[attr-defined]
        "row_error": error,
        "row_saved": error is None,
    }
    if is_htmx(request):
        return render(request, "accounts/_member_row.html", context)
    if error:
        messages.error(request, error)
    return redirect("project_members", pk=pk)


@login_required
@require_POST
def member_remove(request: HttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    membership = get_membership_for_user(request.user, pk, membership_pk)
    try:
        services.membership_remove(actor=request_user(request), membership=membership)
    except DomainError as exc:
        if is_htmx(request):
            return render(
                request,
                "accounts/_member_row.html",
                {
                    "project": membership.project,
                    "m": membership,
                    "role_choices": RoleForm.base_fields["role"].choices,  # type: ignore[attr-defined]
                    "row_error": exc.message,
                },
            )
        messages.error(request, exc.message)
        return redirect("project_members", pk=pk)
    if is_htmx(request):
        return HttpResponse("")
    messages.success(request, f"{membership.user.username} removed from the project.")
    return redirect("project_members", pk=pk)


def _audit_filters(form: AuditFilterForm) -> selectors.AuditFilter:
    if not form.is_valid():
        return selectors.AuditFilter()
    data = form.cleaned_data
    tz = timezone.get_current_timezone()
    since = datetime.combine(data["since"], time.min, tzinfo=tz) if data["since"] else None
    until = datetime.combine(data["until"], time.min, tzinfo=tz) + timedelta(days=1) if data["until"] else None
    return selectors.AuditFilter(
        action=data["action"].strip(),
        actor=data["actor"].strip(),
        object_type=data["object_type"].strip(),
        since=since,
        until=until,
    )


def _audit_page(request: HttpRequest, project_pk: int | None) -> HttpResponse:
    if project_pk is None:
        require_site_staff(request.user)
        project = None
    else:
        project = get_project_for_user(request.user, project_pk, ProjectPerm.VIEW_AUDIT)
    form = AuditFilterForm(request.GET)
    events = selectors.audit_events(project=project, filters=_audit_filters(form))
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "project": project,
        "form": form,
        "page": page,
        "actions": selectors.audit_actions(project),
        "query": query.urlencode(),
    }
    if is_htmx(request):
        return render(request, "accounts/_audit_table.html", context)
    return render(request, "accounts/audit.html", context)


@login_required
@require_GET
def project_audit(request: HttpRequest, pk: int) -> HttpResponse:
    return _audit_page(request, pk)


@login_required
@require_GET
def site_audit(request: HttpRequest) -> HttpResponse:
    return _audit_page(request, None)


def _users_page(
    request: HttpRequest,
    *,
    form: StaffInviteForm | None = None,
    invited: User | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "accounts/users.html",
        {
            "users": selectors.users_for_staff(),
            "form": form or StaffInviteForm(),
            "invited": invited,
            "invite_link": request.build_absolute_uri(selectors.invite_path(invited)) if invited else None,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def users(request: HttpRequest) -> HttpResponse:
    require_site_staff(request.user)
    if request.method == "GET":
        return _users_page(request)
    form = StaffInviteForm(request.POST)
    if form.is_valid():
        try:
            user = services.user_create(
                actor=request_user(request),
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                display_name=form.cleaned_data["display_name"],
                is_staff=form.cleaned_data["is_staff"],
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            return _users_page(request, invited=user)
    return _users_page(request, form=form, status=400)


@login_required
@require_POST
def user_set_active(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_user_for_staff(request.user, pk)
    active = request.POST.get("active") == "1"
    try:
        services.user_set_active(actor=request_user(request), user=user, active=active)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{user.username} {'activated' if active else 'deactivated'}.")
    return redirect("users")


def _invited_user(uidb64: str) -> User | None:
    try:
        pk = force_str(urlsafe_base64_decode(uidb64))
    except (TypeError, ValueError):
        return None
    return User.objects.filter(pk=pk, is_active=True).first() if parse_id(pk) is not None else None


INVITE_SESSION_KEY = "_invite_token"  # where the invite link's token waits for the password


@require_http_methods(["GET", "HEAD"])
def invite_accept(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The link an invitee is handed. As Django's password reset does, a good token moves into the session
    and the browser goes on to an address without it, so the token is not sent again, in a Referer or a log
    line. A spent or wrong one goes on to the same address, which says the link is not valid: this address
    never answers 404, which Django would log with the token in the path."""
    user = _invited_user(uidb64)
    if user is not None and default_token_generator.check_token(user, token):
        request.session[INVITE_SESSION_KEY] = token
    else:
        request.session.pop(INVITE_SESSION_KEY, None)
    return redirect("invite_set_password", uidb64=uidb64)


@require_http_methods(["GET", "POST"])
def invite_set_password(request: HttpRequest, uidb64: str) -> HttpResponse:
    """The invitee chooses their password, then logs in; the invite token comes from their session."""
    user = _invited_user(uidb64)
    if user is None or not default_token_generator.check_token(user, request.session.get(INVITE_SESSION_KEY)):
        return render(request, "registration/invite_invalid.html")
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_password_set(user=user, password=form.cleaned_data["new_password1"], via="invite")
        except DomainError as exc:
            form.add_error("new_password1", exc.message)
        else:
            del request.session[INVITE_SESSION_KEY]
            messages.success(request, "Your password is set. Log in with it now.")
            return redirect("login")
    return render(request, "registration/invite_accept.html", {"form": form, "invited": user})


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    form = PasswordChangeForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_password_set(user=user, password=form.cleaned_data["new_password1"], via="change")
        except DomainError as exc:
            form.add_error("new_password1", exc.message)
        else:
            update_session_auth_hash(request, user)
            messages.success(request, "Password changed.")
            return redirect("dashboard")
    return render(request, "registration/password_change.html", {"form": form})


def _tokens_page(
    request: HttpRequest, *, form: ApiTokenForm | None = None, new_token: str | None = None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "accounts/tokens.html",
        {
            "tokens": selectors.api_tokens_for_user(request.user),
            "form": form or ApiTokenForm(),
            "new_token": new_token,
            "now": timezone.now(),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _tokens_page(request)
    form = ApiTokenForm(request.POST)
    if form.is_valid():
        try:
            _, raw = services.api_token_create(
                user=request_user(request), name=form.cleaned_data["name"], days=form.cleaned_data["days"]
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            return _tokens_page(request, new_token=raw)
    return _tokens_page(request, form=form, status=400)


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, token_key: str) -> HttpResponse:
    token = get_own_api_token(request.user, token_key)
    services.api_token_revoke(actor=request_user(request), token=token)
    messages.success(request, f"Token “{token.info.name}” revoked.")
    return redirect("api_tokens")
