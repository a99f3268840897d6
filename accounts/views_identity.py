"""Site staff's page for sign-in through the organisation's identity provider: which directory groups make site
staff or give a role in a project, and how sign-in is configured."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import identity, selectors
from accounts.forms import GroupMappingForm
from accounts.permissions import get_group_mapping_for_staff, request_user, require_site_staff
from accounts.views import form_error
from core.errors import DomainError


def _page(request: HttpRequest, form: GroupMappingForm, status: int = 200) -> HttpResponse:
    return render(
        request,
        "accounts/group_mappings.html",
        {
            "mappings": selectors.group_mappings(),
            "form": form,
            "oidc_issuer": settings.OIDC_ISSUER,
            "oidc_claim": settings.OIDC_GROUPS_CLAIM,
            "ldap_uri": settings.AUTH_LDAP_SERVER_URI,
            "password_login": settings.PASSWORD_LOGIN,
            "break_glass": settings.BREAK_GLASS_USERS,
            "recheck_seconds": settings.DIRECTORY_RECHECK_SECONDS,
            "renew_seconds": settings.OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def group_mappings(request: HttpRequest) -> HttpResponse:
    require_site_staff(request.user)
    if request.method == "GET":
        return _page(request, GroupMappingForm())
    form = GroupMappingForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            mapping = identity.group_mapping_create(
                actor=request_user(request), group=data["group"], project=data["project"], role=data["role"]
            )
        except DomainError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Mapped: {mapping}. It applies at each member's next sign-in or re-check.")
            return redirect("group_mappings")
    return _page(request, form, status=400)


@login_required
@require_POST
def group_mapping_delete(request: HttpRequest, mapping_pk: int) -> HttpResponse:
    mapping = get_group_mapping_for_staff(request.user, mapping_pk)
    identity.group_mapping_delete(actor=request_user(request), mapping=mapping)
    messages.success(request, f"Removed: {mapping}. Members lose it at their next sign-in or re-check.")
    return redirect("group_mappings")
