"""django-auth-ldap's ``AUTH_LDAP_*`` settings, built from the environment values ``base.py`` read.

Apart from the app code (``accounts/ldap_directory.py``) so that the settings import no models."""

from typing import Any

import ldap


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
