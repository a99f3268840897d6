"""htmx pages for site staff: the people on the site (invite, activate, deactivate) and the audit log, the
site's and a project's."""

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import AuditFilterForm, StaffInviteForm
from accounts.models import ProjectPerm, User
from accounts.permissions import get_project_for_user, get_user_for_staff, request_user, require_site_staff
from accounts.views import form_error
from core.errors import DomainError
from core.http import is_htmx


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
            form_error(form, exc)
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
