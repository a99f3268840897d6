"""Local passwords, which can be switched off for everyone but named break-glass staff accounts.

With ``PASSWORD_LOGIN=false`` people sign in through the organisation's identity provider only; the accounts in
``BREAK_GLASS_USERS`` (site staff) keep their password for the day the provider is down. A directory account
never has a usable password here, so this backend never lets one in."""

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest


def password_login_allowed(username: str) -> bool:
    return settings.PASSWORD_LOGIN or username in settings.BREAK_GLASS_USERS


class LocalPasswordBackend(ModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None or not password_login_allowed(username):
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and not settings.PASSWORD_LOGIN and not user.is_staff:
            return None  # a break-glass account must be site staff
        return user
