"""Every page and API endpoint, with the personas allowed to use it.

The matrix test tries each route as every persona: the allowed ones get ``ok``, logged-in others get
404 (never 403: existence must not leak), and anonymous visitors are sent to the login page (pages) or
refused with 401/403 (API). Later features append their routes to ``ROUTES`` here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import Personas

MEMBERS = frozenset({"annotator", "reviewer", "data_lead", "project_admin", "staff"})
ADMINS = frozenset({"project_admin", "staff"})
STAFF = frozenset({"staff"})
EVERYONE = frozenset({"annotator", "reviewer", "data_lead", "project_admin", "outsider", "staff"})


@dataclass(frozen=True)
class Route:
    label: str
    method: str
    path: Callable[[Personas], str]
    allowed: frozenset[str]
    ok: int = 200
    data: Callable[[Personas], dict[str, Any]] = field(default=lambda p: {})
    api: bool = False


def _a(p: Personas) -> int:
    return p.project.pk


def _annotator_membership(p: Personas) -> int:
    return p.membership(p.annotator).pk


ROUTES: list[Route] = [
    # --- accounts: pages ---
    Route("dashboard", "get", lambda p: "/", EVERYONE),
    Route("project create page", "get", lambda p: "/projects/new/", STAFF),
    Route("project create", "post", lambda p: "/projects/new/", STAFF, ok=302, data=lambda p: {"name": "New one"}),
    Route("project overview", "get", lambda p: f"/projects/{_a(p)}/", MEMBERS),
    Route("members page", "get", lambda p: f"/projects/{_a(p)}/members/", ADMINS),
    Route(
        "member add", "post", lambda p: f"/projects/{_a(p)}/members/add/", ADMINS, ok=302,
        data=lambda p: {"user": "newcomer", "role": "annotator"},
    ),
    Route(
        "member invite", "post", lambda p: f"/projects/{_a(p)}/members/invite/", ADMINS,
        data=lambda p: {"username": "invitee", "role": "reviewer"},
    ),
    Route(
        "member role", "post", lambda p: f"/projects/{_a(p)}/members/{_annotator_membership(p)}/role/", ADMINS,
        ok=302, data=lambda p: {"role": "reviewer"},
    ),
    Route(
        "member remove", "post", lambda p: f"/projects/{_a(p)}/members/{_annotator_membership(p)}/remove/",
        ADMINS, ok=302,
    ),
    Route("project audit page", "get", lambda p: f"/projects/{_a(p)}/audit/", ADMINS),
    Route("site audit page", "get", lambda p: "/audit/", STAFF),
    Route("users page", "get", lambda p: "/users/", STAFF),
    Route("user invite", "post", lambda p: "/users/", STAFF, data=lambda p: {"username": "invitee"}),
    Route(
        "user deactivate", "post", lambda p: f"/users/{p.newcomer.pk}/active/", STAFF, ok=302,
        data=lambda p: {"active": "0"},
    ),
    Route("api tokens page", "get", lambda p: "/account/tokens/", EVERYONE),
    Route("password page", "get", lambda p: "/account/password/", EVERYONE),
    # --- accounts: API ---
    Route("api me", "get", lambda p: "/api/v1/me/", EVERYONE, api=True),
    Route("api health", "get", lambda p: "/api/v1/health/", EVERYONE, api=True),
    Route("api schema", "get", lambda p: "/api/schema/", EVERYONE, api=True),
    Route("api docs", "get", lambda p: "/api/docs/", EVERYONE, api=True),
    Route("api projects", "get", lambda p: "/api/v1/projects/", EVERYONE, api=True),
    Route("api project", "get", lambda p: f"/api/v1/projects/{_a(p)}/", MEMBERS, api=True),
    Route("api members", "get", lambda p: f"/api/v1/projects/{_a(p)}/members/", ADMINS, api=True),
    Route(
        "api member add", "post", lambda p: f"/api/v1/projects/{_a(p)}/members/", ADMINS, ok=201, api=True,
        data=lambda p: {"username": "newcomer", "role": "annotator"},
    ),
    Route(
        "api member role", "patch", lambda p: f"/api/v1/projects/{_a(p)}/members/{_annotator_membership(p)}/",
        ADMINS, api=True, data=lambda p: {"role": "reviewer"},
    ),
    Route(
        "api member remove", "delete",
        lambda p: f"/api/v1/projects/{_a(p)}/members/{_annotator_membership(p)}/", ADMINS, ok=204, api=True,
    ),
    Route("api project audit", "get", lambda p: f"/api/v1/projects/{_a(p)}/audit-events/", ADMINS, api=True),
    Route("api site audit", "get", lambda p: "/api/v1/audit-events/", STAFF, api=True),
    Route("api tokens", "get", lambda p: "/api/v1/tokens/", EVERYONE, api=True),
    Route(
        "api token create", "post", lambda p: "/api/v1/tokens/", EVERYONE, ok=201, api=True,
        data=lambda p: {"name": "script", "days": 7},
    ),
]  # fmt: skip
