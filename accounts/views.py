"""htmx pages of the accounts app: login, health check, dashboard, new project, a project's members. Site
staff's pages (users, audit log) are in ``views_admin.py``, a person's own account (invite, password, API
tokens) in ``views_account.py``."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.forms import Form
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import InviteForm, LoginForm, MemberAddForm, ProjectCreateForm, RoleForm
from accounts.models import ProjectPerm, User
from accounts.permissions import get_membership_for_user, get_project_for_user, request_user, require_site_staff
from core.errors import DomainError
from core.http import is_htmx


class LoginView(auth_views.LoginView):
    """The login page: the identity provider's button when OIDC is configured, the username and password form
    for LDAP and local accounts (folded away as "break-glass" when only named staff may use a password)."""

    form_class = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        oidc = bool(settings.OIDC_ISSUER)
        ldap = bool(settings.AUTH_LDAP_SERVER_URI)
        context.update(
            oidc=oidc,
            oidc_name=settings.OIDC_PROVIDER_NAME,
            ldap=ldap,
            # The form is the way in unless only break-glass accounts may use it and no directory checks it.
            form_folded=oidc and not ldap and not settings.PASSWORD_LOGIN,
            sso_failed=self.request.GET.get("sso") == "failed",
        )
        return context


def form_error(form: Form, exc: DomainError) -> None:
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
            form_error(form, exc)
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
            form_error(form, exc)
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
            form_error(form, exc)
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
