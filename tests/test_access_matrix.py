"""Every route as every persona (and as an anonymous visitor): the allowed ones get ``ok``, the others 404.

A route's world (the personas and the objects its path and body name) is built once and shared by its eight
requests: the fixture holds it in an outer transaction, each request runs in a savepoint of its own (pytest-django's
``db``) that is rolled back after it, and the world is rolled back when the route's last request is done. Building
the world per request cost the suite about eleven CPU-minutes of its twenty-six (docs/PERFORMANCE.md).
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from tests.access_matrix import ROUTES, Route
from tests.conftest import PERSONA_NAMES, ClientFor, Personas, make_personas


@pytest.fixture(scope="module", params=ROUTES, ids=[r.label for r in ROUTES])
def world(
    request: pytest.FixtureRequest, django_db_setup: None, django_db_blocker: Any
) -> Iterator[tuple[Route, Personas]]:
    """The route with its personas and objects, made in a transaction that outlives each request's savepoint.
    pytest orders the tests so that each route's requests run one after another (a module-scoped parameter)."""
    route: Route = request.param
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            personas = make_personas()
            route.path(personas)
            route.data(personas)
            yield route, personas
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def route(world: tuple[Route, Personas]) -> Route:
    return world[0]


@pytest.fixture
def personas(world: tuple[Route, Personas], db: None) -> Iterator[Personas]:
    """The route's personas. What a request's setup adds to ``made`` goes with its savepoint, so it is forgotten
    after the request too."""
    shared = world[1]
    before = dict(shared.made)
    yield shared
    shared.made.clear()
    shared.made.update(before)


def _call(client_for: ClientFor, personas: Personas, route: Route, persona: str | None):  # type: ignore[no-untyped-def]
    user = personas.by_name(persona) if persona else None
    path = route.path(personas)
    if route.setup is not None and user is not None:
        route.setup(personas, user)
    client = client_for(user)
    data = route.data(personas)
    if route.api and not route.multipart and route.method in {"post", "patch", "put"}:
        return getattr(client, route.method)(path, data=json.dumps(data), content_type="application/json")
    if route.method == "get":
        return client.get(path, data)
    return getattr(client, route.method)(path, data)


@pytest.mark.parametrize("persona", PERSONA_NAMES)
def test_it_answers_each_persona_as_the_role_allows(
    route: Route, persona: str, personas: Personas, client_for: ClientFor
) -> None:
    response = _call(client_for, personas, route, persona)
    expected = route.ok if persona in route.allowed else 404
    assert response.status_code == expected, f"{route.label} as {persona}: {response.status_code}, expected {expected}"


def test_it_refuses_anonymous_visitors(route: Route, personas: Personas, client_for: ClientFor) -> None:
    response = _call(client_for, personas, route, None)
    if route.anonymous is not None:  # readable without signing in (health, schema, index, sign-in, docs)
        assert response.status_code == route.anonymous, f"{route.label}: {response.status_code}"
        if route.anonymous == 302:
            assert response["Location"].startswith("/login/?next=")
    elif route.api:
        assert response.status_code in {401, 403}
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
