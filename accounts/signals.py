"""Receivers for Django's and django-axes' authentication signals. They only call the audit service."""

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from accounts.audit import auth_event_record
from accounts.models import User


def _ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR")


def _on_login(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    auth_event_record(action="auth.login", user=user, username=user.username, ip=_ip(request))


def _on_logout(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        auth_event_record(action="auth.logout", user=user, username=user.username, ip=_ip(request))


def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))
    auth_event_record(action="auth.login_failed", user=None, username=username, ip=_ip(request))


def _on_locked_out(sender: Any, request: HttpRequest, username: str | None, ip_address: str, **kwargs: Any) -> None:
    auth_event_record(action="auth.locked_out", user=None, username=username or "", ip=ip_address)


def connect() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="accounts.audit_login")
    user_logged_out.connect(_on_logout, dispatch_uid="accounts.audit_logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="accounts.audit_login_failed")
    user_locked_out.connect(_on_locked_out, dispatch_uid="accounts.audit_locked_out")
