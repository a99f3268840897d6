"""DRF authentication with personal API tokens (django-rest-knox, digests only at rest)."""

import binascii
from datetime import timedelta
from hmac import compare_digest
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS
from knox.signals import token_expired
from rest_framework import exceptions

from accounts import sql
from accounts.directories import directory_recheck_if_due
from accounts.services import api_token_touch

# "Last used" is a hint for the tokens page, not an audit record: stamping it once a minute is enough, and a
# request whose token was stamped less than a minute ago writes nothing.
TOUCH_EVERY = timedelta(minutes=1)


class ApiTokenAuthentication(TokenAuthentication):
    """``Authorization: Token enclave_…``; records when each token was last used.

    knox's own check reads every token of the user on every request to delete the expired ones; here one
    query reads the token with its user and its ``ApiTokenInfo``. An expired token is deleted when it is
    presented (and refused), the user's other expired tokens when "last used" is stamped, at most once a
    minute per token."""

    def authenticate_credentials(self, token: bytes) -> tuple[Any, Any]:
        msg = _("Invalid token.")
        raw = token.decode("utf-8")
        now = timezone.now()
        for auth_token in sql.tokens_with_user_and_info(raw[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if auth_token.expiry is not None and auth_token.expiry < now:
                username = auth_token.user.get_username()
                auth_token.delete()
                token_expired.send(sender=self.__class__, username=username, source="auth_token")
                continue
            try:
                digest = hash_token(raw)
            except (TypeError, binascii.Error):
                raise exceptions.AuthenticationFailed(msg) from None
            if compare_digest(digest, auth_token.digest):
                user, auth_token = self.validate_user(auth_token)
                if user.directory and not directory_recheck_if_due(user, via_session=False):
                    raise exceptions.AuthenticationFailed(_("Your directory account no longer gives access."))
                info = getattr(auth_token, "info", None)
                if info is None or info.last_used_at is None or info.last_used_at <= now - TOUCH_EVERY:
                    api_token_touch(token=auth_token)
                    self._delete_expired_tokens_of(auth_token, now)
                return user, auth_token
        raise exceptions.AuthenticationFailed(msg)

    def _delete_expired_tokens_of(self, auth_token: AuthToken, now: Any) -> None:
        for other in AuthToken.objects.filter(user_id=auth_token.user_id, expiry__lt=now).exclude(
            digest=auth_token.digest
        ):
            other.delete()
            token_expired.send(sender=self.__class__, username=auth_token.user.get_username(), source="other_token")


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api_auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Personal API token, sent as `Token enclave_…`. Create one on the tokens page.",
        }
