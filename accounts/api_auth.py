"""DRF authentication with personal API tokens (django-rest-knox, digests only at rest)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication
from rest_framework.request import Request

from accounts.services import api_token_touch


class ApiTokenAuthentication(TokenAuthentication):
    """``Authorization: Token enclave_…``; records when each token was last used."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is not None:
            api_token_touch(token=result[1])
        return result


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
