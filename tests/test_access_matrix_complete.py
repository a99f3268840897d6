"""The access matrix is complete by construction: every URL pattern, with every method its view allows, is
either tried by ``tests/access_matrix.py`` or named below as public with its reason."""

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from tests.access_matrix import ROUTES
from tests.conftest import PERSONA_NAMES, Personas

METHODS = ("get", "post", "put", "patch", "delete")

# Patterns not walked at all: Django's own admin site (staff-only, guarded by Django) and the favicon
# redirect to a static file.
EXCLUDED_PREFIXES = ("django-admin/", "favicon.ico")

# (pattern, method) pairs reachable without being a member of anything; each says why.
PUBLIC: dict[tuple[str, str], str] = {
    ("login/", "get"): "the sign-in form",
    ("login/", "post"): "signing in",
    ("login/", "put"): "Django's form view answers PUT as it answers POST: signing in",
    ("logout/", "post"): "signing out ends whatever session there is",
    ("healthz", "get"): "the load balancer's liveness probe",
    ("oidc/authenticate/", "get"): "the way to the organisation's OIDC provider (404 unless one is configured)",
    ("oidc/callback/", "get"): "the OIDC provider's answer: its signed code and the session's state are the access",
    ("invite/<str:uidb64>/<str:token>/", "get"): "an invite link: the signed token is the access",
    ("invite/<str:uidb64>/set-password/", "get"): "the invitee's password form: the link's token, kept in the session",
    ("invite/<str:uidb64>/set-password/", "post"): "same, submitting the password",
    ("api/v1/tokens/<str:token_key>/", "delete"): "a user revokes their own token; others' keys answer 404",
    ("account/tokens/", "post"): "a signed-in user creates their own token",
    ("account/tokens/<str:token_key>/revoke/", "post"): "a user revokes their own token; others' keys answer 404",
    ("account/password/", "post"): "a signed-in user changes their own password",
}


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if route.startswith(EXCLUDED_PREFIXES):
            continue
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        else:
            yield route, entry


def _declared_methods(view: Callable[..., Any]) -> set[str] | None:
    """The methods named by ``require_http_methods`` (and ``require_GET``/``require_POST``) on a function
    view, found in the decorator's closure anywhere down the ``__wrapped__`` chain."""
    function: Any = view
    while function is not None:
        if function.__closure__:
            names = inspect.getclosurevars(function).nonlocals.get("request_method_list")
            if names is not None:
                return {name.lower() for name in names} - {"head", "options"}
        function = getattr(function, "__wrapped__", None)
    return None


def allowed_methods(view: Callable[..., Any]) -> set[str]:
    view_class = getattr(view, "view_class", None) or getattr(view, "cls", None)
    if view_class is not None:  # Django and DRF class views: the handlers the class defines
        return {m for m in METHODS if m in view_class.http_method_names and hasattr(view_class, m)}
    declared = _declared_methods(view)
    assert declared is not None, f"{view.__qualname__} declares no methods (require_http_methods)"
    return declared


def url_conf() -> set[tuple[str, str]]:
    """Every (pattern, method) pair the URLconf answers."""
    return {
        (route, method)
        for route, pattern in _walk(get_resolver().url_patterns)
        for method in allowed_methods(pattern.callback)
    }


def matrix_pairs(personas: Personas) -> set[tuple[str, str]]:
    """The (pattern, method) pairs the matrix tries, each concrete path resolved back to its pattern. Each
    route builds its objects as it would alone (the matrix test gives each its own personas), then they go."""
    pairs = set()
    for route in ROUTES:
        made = dict(personas.made)
        with transaction.atomic():
            path = route.path(personas)
            transaction.set_rollback(True)
        personas.made = made
        pairs.add((resolve(path.split("?")[0]).route, route.method))
    return pairs


def test_it_finds_every_pattern_and_method_in_the_matrix_or_the_public_list(personas: Personas) -> None:
    pairs = url_conf()
    tried = matrix_pairs(personas)
    missing = sorted(pairs - tried - PUBLIC.keys())
    assert not missing, "routes neither in tests/access_matrix.py nor public:\n" + "\n".join(map(str, missing))
    assert not sorted(PUBLIC.keys() - pairs), "public routes that no longer exist"
    assert not sorted(PUBLIC.keys() & tried), "public routes that the matrix also tries: drop them from PUBLIC"


def test_it_reads_the_methods_each_view_allows() -> None:
    pairs = url_conf()
    assert ("projects/<id:pk>/members/add/", "post") in pairs
    assert ("projects/<id:pk>/members/add/", "get") not in pairs
    assert {m for p, m in pairs if p == "api/v1/projects/<id:pk>/"} == {"get", "patch"}


def test_it_states_its_size_in_the_readme() -> None:
    pairs = url_conf()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    size = " ".join(readme.split())
    assert f"{len({p for p, _ in pairs})} URL patterns answer {len(pairs)} (pattern, method) pairs" in size
    assert f"{len(PUBLIC)} of them are public" in size
    assert f"the other {len(pairs) - len(PUBLIC)} are tried by {len(ROUTES)} matrix routes" in size
    assert f"= {len(ROUTES) * (len(PERSONA_NAMES) + 1)} requests" in size
