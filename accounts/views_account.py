"""htmx pages of a person's own account: accepting an invite (choosing a password), changing the password,
personal API tokens."""

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.contrib.auth.tokens import default_token_generator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import ApiTokenForm
from accounts.models import User
from accounts.permissions import get_own_api_token, request_user
from accounts.views import form_error
from core.errors import DomainError
from core.http import parse_id


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
            form_error(form, exc)
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
