"""Sign-in against the organisation's LDAP directory (django-auth-ldap), configured by environment variables.

The login form's username and password are checked by a bind as the user found by the user search; the group
search gives the groups (their ``cn``) that go through the group mappings. Accounts are matched by the entry's
DN, so a local account that happens to share the username is never taken over. ``LDAP_RECHECK_SECONDS`` after
the last check, the next request of a session or API token reads the entry and its groups again
(``ldap_account_recheck``): an entry gone or out of ``LDAP_REQUIRE_GROUP`` deactivates the account, changed
groups change its roles.
"""

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django_auth_ldap.backend import LDAPBackend, _LDAPUser

from accounts.audit import audit_event_record
from accounts.identity import directory_account_lost, directory_account_returned, directory_account_sync
from accounts.models import Directory, User

logger = logging.getLogger(__name__)


def ldap_enabled() -> bool:
    return bool(getattr(settings, "AUTH_LDAP_SERVER_URI", ""))


class LDAPDirectoryBackend(LDAPBackend):
    """django-auth-ldap's backend: accounts by DN, groups through the mappings, inactive sessions refused."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if not ldap_enabled():
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[User, bool]:
        dn = ldap_user.dn
        user = User.objects.filter(directory=Directory.LDAP, directory_subject=dn).first()
        if user is not None:
            return user, False
        name = username.lower()
        if User.objects.filter(username__iexact=name).exists():
            name = f"{name}-{hashlib.sha256(dn.encode()).hexdigest()[:8]}"
        return User(username=name, directory=Directory.LDAP, directory_subject=dn), True

    def authenticate_ldap_user(self, ldap_user: Any, password: str) -> User | None:
        user: User | None = ldap_user.authenticate(password)
        if user is None:
            return None
        if user.directory_checked_at is None:
            audit_event_record(
                actor=None, action="identity.create", target=user, payload={"username": user.username, "via": "ldap"}
            )
        directory_account_returned(user=user, via="ldap.sign_in")
        user.refresh_from_db()
        if user.is_active:
            directory_account_sync(user=user, groups=ldap_user.group_names, via="ldap.sign_in")
            user.refresh_from_db()
        return user

    def get_user(self, user_id: Any) -> Any:
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None


def ldap_account_recheck(*, user: User) -> bool:
    """Read the account's entry and groups from the directory again; deactivate it when the entry is gone or
    no longer in the required group, else apply its groups. Returns whether the account is still good. A
    directory that cannot be reached raises ``ldap.LDAPError``: the account stands until it answers."""
    backend = LDAPDirectoryBackend()
    ldap_user = _LDAPUser(backend, user=user)
    # The entry by its DN (what the account was made from), not by a search on a username that may have changed.
    ldap_user._user_dn = user.directory_subject
    with transaction.atomic():
        if ldap_user.attrs is None:
            directory_account_lost(user=user, via="ldap.recheck", reason="entry not found")
            return False
        try:
            ldap_user._check_requirements()
        except _LDAPUser.AuthenticationFailed as refused:
            directory_account_lost(user=user, via="ldap.recheck", reason=str(refused))
            return False
        directory_account_sync(user=user, groups=ldap_user.group_names, via="ldap.recheck")
    return True
