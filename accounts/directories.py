"""When a directory account is read again from its directory, and by which means.

LDAP accounts (sessions and API tokens) are searched again; OIDC accounts' API tokens are renewed with the stored
refresh token, while OIDC sessions are renewed at the provider by ``accounts.oidc.OIDCSessionRefresh``. A
directory that cannot be reached leaves the account as it stands and is asked again a minute later, so a
directory outage neither locks everyone out nor slows every request."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import Directory, User

logger = logging.getLogger(__name__)

RETRY_AFTER_OUTAGE = timedelta(minutes=1)


def directory_recheck_if_due(user: User, *, via_session: bool) -> bool:
    """Whether the account may go on; checks it with its directory first when the last check is too old."""
    if user.directory == Directory.OIDC and via_session:
        return True  # the session is renewed at the provider
    interval = timedelta(seconds=settings.DIRECTORY_RECHECK_SECONDS)
    now = timezone.now()
    if user.directory_checked_at is not None and now - user.directory_checked_at < interval:
        return True
    try:
        if user.directory == Directory.LDAP:
            from accounts.ldap_directory import ldap_account_recheck, ldap_enabled

            good = ldap_account_recheck(user=user) if ldap_enabled() else True
        elif user.directory == Directory.OIDC:
            from accounts.oidc import oidc_account_recheck, oidc_enabled

            good = oidc_account_recheck(user=user) if oidc_enabled() else True
        else:
            return True
    except Exception:
        logger.warning("could not re-check %s with their %s directory", user.username, user.directory, exc_info=True)
        User.objects.filter(pk=user.pk).update(directory_checked_at=now - interval + RETRY_AFTER_OUTAGE)
        return True
    if good:
        user.refresh_from_db(fields=["is_active", "is_staff", "directory_checked_at"])
        return user.is_active
    return False
