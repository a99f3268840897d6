"""Settings of the sign-in through the organisation's identity provider, read from the environment: OIDC
(mozilla-django-oidc's ``OIDC_*``), LDAP (django-auth-ldap's ``AUTH_LDAP_*``, built by ``ldap_settings``), the
re-check interval of directory accounts and the local-password switch. ``base.py`` takes them all; apart from the
app code (``accounts/oidc.py``, ``accounts/ldap_directory.py``) so that the settings import no models."""

from typing import Any

import ldap
from django.core.exceptions import ImproperlyConfigured

from enclave.settings.env import env_bool, env_choice, env_int, env_list, env_str


def ldap_settings(env: dict[str, Any]) -> dict[str, Any]:
    """The settings for these values (keys as ``base.py`` names them)."""
    from django_auth_ldap.config import GroupOfNamesType, GroupOfUniqueNamesType, LDAPSearch, PosixGroupType

    group_types = {
        "groupOfNames": GroupOfNamesType(name_attr="cn"),
        "groupOfUniqueNames": GroupOfUniqueNamesType(name_attr="cn"),
        "posixGroup": PosixGroupType(name_attr="cn"),
    }
    values: dict[str, Any] = {
        "AUTH_LDAP_SERVER_URI": env["uri"],
        "AUTH_LDAP_BIND_DN": env["bind_dn"],
        "AUTH_LDAP_BIND_PASSWORD": env["bind_password"],
        "AUTH_LDAP_START_TLS": env["start_tls"],
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(env["user_base"], ldap.SCOPE_SUBTREE, env["user_filter"]),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(
            env["group_base"], ldap.SCOPE_SUBTREE, f"(objectClass={env['group_type']})"
        ),
        "AUTH_LDAP_GROUP_TYPE": group_types[env["group_type"]],
        "AUTH_LDAP_USER_ATTR_MAP": {"email": env["email_attr"], "display_name": env["name_attr"]},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CONNECTION_OPTIONS": {ldap.OPT_NETWORK_TIMEOUT: env["timeout"], ldap.OPT_TIMEOUT: env["timeout"]},
    }
    if env["require_group"]:
        values["AUTH_LDAP_REQUIRE_GROUP"] = env["require_group"]
    return values


# Sign-in through the organisation's identity provider (README, "Sign-in through your identity provider").
# OIDC: the issuer, the client id and secret; the endpoints come from the issuer's discovery document on first
# use unless set here. The groups claim goes through the group mappings (users page → Group mappings).
OIDC_ISSUER = env_str("OIDC_ISSUER", "")
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "")
if OIDC_ISSUER and not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_ISSUER is set: set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET too.")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "your organisation's sign-in")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_JWKS_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = env_choice("OIDC_SIGN_ALGO", "RS256", ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"])
OIDC_RP_SCOPES = env_str("OIDC_SCOPES", "openid email profile")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
# A session is renewed silently at the provider this often; a refusal there (account disabled) ends it.
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = env_int("OIDC_RENEW_SECONDS", 300, minimum=30)
OIDC_USE_PKCE = True
OIDC_VERIFY_SSL = env_bool("OIDC_VERIFY_TLS", default=True)
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10, minimum=1)
OIDC_CALLBACK_CLASS = "accounts.oidc.OIDCCallbackView"
OIDC_AUTHENTICATE_CLASS = "accounts.oidc.OIDCSignInView"
LOGIN_REDIRECT_URL_FAILURE = "/login/?sso=failed"

# LDAP: bind, user search, group search; groups by their cn through the same mappings.
AUTH_LDAP_SERVER_URI = env_str("LDAP_SERVER_URI", "")
if AUTH_LDAP_SERVER_URI:
    globals().update(
        ldap_settings(
            {
                "uri": AUTH_LDAP_SERVER_URI,
                "bind_dn": env_str("LDAP_BIND_DN", ""),
                "bind_password": env_str("LDAP_BIND_PASSWORD", ""),
                "start_tls": env_bool("LDAP_START_TLS", default=False),
                "user_base": env_str("LDAP_USER_BASE", required=True),
                "user_filter": env_str("LDAP_USER_FILTER", "(uid=%(user)s)"),
                "group_base": env_str("LDAP_GROUP_BASE", required=True),
                "group_type": env_choice(
                    "LDAP_GROUP_TYPE", "groupOfNames", ["groupOfNames", "groupOfUniqueNames", "posixGroup"]
                ),
                "require_group": env_str("LDAP_REQUIRE_GROUP", ""),
                "email_attr": env_str("LDAP_EMAIL_ATTRIBUTE", "mail"),
                "name_attr": env_str("LDAP_NAME_ATTRIBUTE", "cn"),
                "timeout": env_int("LDAP_TIMEOUT_SECONDS", 5, minimum=1),
            }
        )
    )
# A directory account's groups and standing are read again this long after the last check, at its next request
# (a session or an API token): LDAP by a search, OIDC API use by the refresh token.
DIRECTORY_RECHECK_SECONDS = env_int("DIRECTORY_RECHECK_SECONDS", 300, minimum=10)

# Local passwords can be switched off for everyone but named break-glass staff accounts (for when the identity
# provider is down).
PASSWORD_LOGIN = env_bool("PASSWORD_LOGIN", default=True)
BREAK_GLASS_USERS = env_list("BREAK_GLASS_USERS", [])
