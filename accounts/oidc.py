"""Sign-in through the organisation's OIDC provider (mozilla-django-oidc), configured by environment variables.

``OIDC_ISSUER``, ``OIDC_CLIENT_ID`` and ``OIDC_CLIENT_SECRET`` are enough: the provider's endpoints are read from
its discovery document (``<issuer>/.well-known/openid-configuration``) the first time a sign-in needs them, never
at start-up, so a provider that is down does not stop Enclave (or local sign-in) from starting; each endpoint can
be set explicitly instead (``OIDC_AUTHORIZATION_ENDPOINT``...). Accounts are matched by the provider's ``sub``,
never by e-mail (an address can be reissued to someone else); the groups claim (``OIDC_GROUPS_CLAIM``) goes
through the group mappings at every sign-in and every silent renewal of the session (``OIDC_RENEW_SECONDS``).
"""

import hashlib
import logging
import threading
import time
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.middleware import SessionRefresh
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.audit import audit_event_record
from accounts.identity import directory_account_lost, directory_account_returned, directory_account_sync
from accounts.models import Directory, User

logger = logging.getLogger(__name__)

# Setting → the discovery document's key, for endpoints not set explicitly.
_DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
_DISCOVERY_TTL = 3600.0
_discovery: dict[str, dict[str, Any]] = {}
_discovery_lock = threading.Lock()


def oidc_enabled() -> bool:
    return bool(getattr(settings, "OIDC_ISSUER", ""))


def provider_metadata() -> dict[str, Any]:
    """The provider's discovery document, fetched on first use and kept for an hour."""
    issuer = settings.OIDC_ISSUER.rstrip("/")
    with _discovery_lock:
        cached = _discovery.get(issuer)
        if cached and time.monotonic() - cached["_fetched"] < _DISCOVERY_TTL:
            return cached
        url = issuer + "/.well-known/openid-configuration"
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        document = response.json()
        named = str(document.get("issuer", "")).rstrip("/")
        if named != issuer:
            raise ImproperlyConfigured(f"The OIDC provider at {url} names another issuer: {named!r}")
        _discovery[issuer] = {**document, "_fetched": time.monotonic()}
        return _discovery[issuer]


def oidc_setting(attr: str, *args: Any) -> Any:
    """mozilla-django-oidc's settings, with endpoints that are not set taken from the discovery document."""
    if attr in _DISCOVERED and not getattr(settings, attr, None):
        return provider_metadata()[_DISCOVERED[attr]]
    return import_from_settings(attr, *args)


class OIDCBackend(OIDCAuthenticationBackend):
    """Accounts by the provider's ``sub``; groups through the mappings; an inactive account's session refused."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django makes every backend for every authenticate(), local passwords included: the endpoints are read
        # when a token is exchanged (below), not here, so nothing reaches the provider unless it is used.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return str(oidc_setting("OIDC_OP_TOKEN_ENDPOINT"))

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:
        return str(oidc_setting("OIDC_OP_USER_ENDPOINT"))

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return str(oidc_setting("OIDC_OP_JWKS_ENDPOINT"))

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if not oidc_enabled() or request is None or "code" not in request.GET:
            return None  # a password sign-in: not ours
        return super().authenticate(request, **kwargs)

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        token_info: dict[str, Any] = super().get_token(payload)
        self._refresh_token = token_info.get("refresh_token", "")
        return token_info

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        subject = claims.get("sub")
        if not subject:
            return self.UserModel.objects.none()
        return self.UserModel.objects.filter(directory=Directory.OIDC, directory_subject=subject)

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def _username_for(self, claims: dict[str, Any]) -> str:
        wanted = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])[:130]
        if not self.UserModel.objects.filter(username=wanted).exists():
            return wanted
        # Taken (by a local account or another subject): a stable suffix from the subject.
        return f"{wanted}-{hashlib.sha256(str(claims['sub']).encode()).hexdigest()[:8]}"

    def create_user(self, claims: dict[str, Any]) -> User:
        with transaction.atomic():
            user: User = self.UserModel.objects.create_user(
                username=self._username_for(claims),
                email=str(claims.get("email", "")),
                directory=Directory.OIDC,
                directory_subject=str(claims["sub"]),
                display_name=str(claims.get("name", ""))[:150],
            )
            user.set_unusable_password()
            user.save(update_fields=["password"])
            audit_event_record(
                actor=None,
                action="identity.create",
                target=user,
                payload={"username": user.username, "via": "oidc"},
            )
        return self._after_sign_in(user, claims)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        changed = []
        for name, value in (("email", claims.get("email")), ("display_name", claims.get("name"))):
            if value is not None and getattr(user, name) != str(value)[:150]:
                setattr(user, name, str(value)[:150])
                changed.append(name)
        if changed:
            user.save(update_fields=changed)
        directory_account_returned(user=user, via="oidc.sign_in")
        return self._after_sign_in(user, claims)

    def _after_sign_in(self, user: User, claims: dict[str, Any]) -> User:
        if not user.is_active:
            return user  # an admin deactivated it: the callback refuses the sign-in
        refresh_token = getattr(self, "_refresh_token", "")
        if refresh_token:
            User.objects.filter(pk=user.pk).update(directory_refresh_token=refresh_token)
        directory_account_sync(user=user, groups=groups_from_claims(claims), via="oidc.sign_in")
        user.refresh_from_db()
        return user

    def get_user(self, user_id: Any) -> Any:
        user = super().get_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None


def groups_from_claims(claims: dict[str, Any]) -> list[str]:
    """The groups claim as a list of names (a provider may send one string, a list, or nothing)."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM, [])
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []


def oidc_account_recheck(*, user: User) -> bool:
    """Outside a browser (API tokens), renew a directory account with its refresh token: the provider's
    answer brings the current groups, a refusal (``invalid_grant``: the account was disabled or its consent
    withdrawn) deactivates it. Returns whether the account is still good. Without a stored refresh token the
    provider cannot be asked; the account stands as its last sign-in left it."""
    if not user.directory_refresh_token:
        return user.is_active
    backend = OIDCBackend()
    response = requests.post(
        backend.OIDC_OP_TOKEN_ENDPOINT,
        data={
            "grant_type": "refresh_token",
            "refresh_token": user.directory_refresh_token,
            "client_id": settings.OIDC_RP_CLIENT_ID,
            "client_secret": settings.OIDC_RP_CLIENT_SECRET,
        },
        timeout=settings.OIDC_TIMEOUT,
        verify=settings.OIDC_VERIFY_SSL,
    )
    if response.status_code in (400, 401):
        error = response.json().get("error", "") if response.content else ""
        if error in ("invalid_grant", "unauthorized_client", "invalid_client") or not error:
            directory_account_lost(user=user, via="oidc.recheck", reason=error or f"HTTP {response.status_code}")
            return False
    response.raise_for_status()
    token_info = response.json()
    claims = backend.get_userinfo(token_info.get("access_token"), token_info.get("id_token"), None)
    if claims.get("sub") != user.directory_subject:
        raise SuspiciousOperation("The OIDC provider answered a renewal with another subject.")
    User.objects.filter(pk=user.pk).update(
        directory_refresh_token=token_info.get("refresh_token") or user.directory_refresh_token
    )
    directory_account_sync(user=user, groups=groups_from_claims(claims), via="oidc.recheck")
    return True


class _WhenConfigured:
    """A view of the sign-in through the provider: 404 unless one is configured, its settings through discovery."""

    get_settings = staticmethod(oidc_setting)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not oidc_enabled():
            raise Http404("Sign-in through an OIDC provider is not configured.")
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


class OIDCSignInView(_WhenConfigured, OIDCAuthenticationRequestView):
    """Sends the browser to the provider (endpoint from discovery, read per request)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    @property
    def OIDC_OP_AUTH_ENDPOINT(self) -> str:
        return str(oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT"))


class OIDCCallbackView(_WhenConfigured, OIDCAuthenticationCallbackView):
    """The provider's answer; a refusal ends the session (a failed silent renewal logs out)."""


class OIDCSessionRefresh(SessionRefresh):
    """Renews an OIDC session silently (``prompt=none``) once its id token is older than ``OIDC_RENEW_SECONDS``:
    the provider's answer re-applies the groups, its refusal (account disabled, signed out there) ends the
    session. Only sessions made by the OIDC sign-in are renewed."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, get_response: Any) -> None:
        # Not SessionRefresh's __init__: it reads the endpoints at start-up. Settings are read per request.
        MiddlewareMixin.__init__(self, get_response)

    def _read_settings(self) -> None:
        self.OIDC_EXEMPT_URLS = oidc_setting("OIDC_EXEMPT_URLS", [])
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_STATE_SIZE = oidc_setting("OIDC_STATE_SIZE", 32)
        self.OIDC_AUTHENTICATION_CALLBACK_URL = oidc_setting(
            "OIDC_AUTHENTICATION_CALLBACK_URL", "oidc_authentication_callback"
        )
        self.OIDC_RP_SCOPES = oidc_setting("OIDC_RP_SCOPES", "openid email")
        self.OIDC_USE_NONCE = oidc_setting("OIDC_USE_NONCE", True)
        self.OIDC_NONCE_SIZE = oidc_setting("OIDC_NONCE_SIZE", 32)

    @property
    def OIDC_OP_AUTHORIZATION_ENDPOINT(self) -> str:
        return str(oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT"))

    @property
    def exempt_urls(self) -> set[str]:
        return {
            reverse(name) for name in ("oidc_authentication_init", "oidc_authentication_callback", "login", "logout")
        }

    @property
    def exempt_url_patterns(self) -> set[Any]:
        return set()

    def is_refreshable_url(self, request: HttpRequest) -> bool:
        # A page navigation renews; an htmx fragment or an API call (a redirect to the provider would break it)
        # waits for the next one.
        if request.headers.get("HX-Request") or request.path.startswith(("/api/", "/static/")):
            return False
        return bool(super().is_refreshable_url(request))

    def process_request(self, request: HttpRequest) -> Any:
        if not oidc_enabled():
            return None
        self._read_settings()
        return super().process_request(request)
