"""Typed, strict readers for environment values.

django-environ parses URLs well but casts leniently (``DEBUG=banana`` silently becomes False), so every
value goes through one of these readers, which fail with the variable's name, the value and what was
expected.
"""

import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

_parser = environ.Env()


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name}={value!r} is invalid: expected {expected}.")


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    value = _raw(name)
    if value is None:
        if required or default is None:
            raise ImproperlyConfigured(f"Environment variable {name} is required and not set.")
        return default
    return value


def env_optional_str(name: str) -> str | None:
    return _raw(name)


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _bad(name, value, "one of " + ", ".join(sorted(_TRUE | _FALSE)))


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "a whole number") from None
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"a whole number >= {minimum}")
    if maximum is not None and number > maximum:
        raise _bad(name, value, f"a whole number <= {maximum}")
    return number


def env_list(name: str, default: Sequence[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: Sequence[str]) -> str:
    value = _raw(name)
    if value is None:
        return default
    if value not in choices:
        raise _bad(name, value, "one of " + ", ".join(choices))
    return value


def env_database(name: str, default: dict[str, Any]) -> dict[str, Any]:
    """A PostgreSQL or SQLite database from a URL; any other scheme is refused."""
    value = _raw(name)
    if value is None:
        return default
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    allowed = {"postgres", "postgresql", "pgsql", "sqlite"}
    if scheme not in allowed:
        raise _bad(name, value, "a postgres://user@host:port/name or sqlite:////absolute/path URL")
    config: dict[str, Any] = _parser.db_url_config(value)
    if config["ENGINE"] == "django.db.backends.postgresql" and not config.get("NAME"):
        raise _bad(name, value, "a URL that names the database, e.g. postgres://user@host:5432/enclave")
    return config


def env_http_url(name: str) -> str | None:
    """An http:// or https:// URL with a host (a server inside the perimeter), without a trailing slash."""
    value = _raw(name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise _bad(name, value, "an http://host:port or https://host URL (no query or fragment)")
    return value.rstrip("/")


def env_redis_url(name: str) -> str | None:
    value = _raw(name)
    if value is None:
        return None
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise _bad(name, value, "a redis://host:port/db URL")
    return value
