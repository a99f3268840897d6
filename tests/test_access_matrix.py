import json

import pytest

from tests.access_matrix import ROUTES, Route
from tests.conftest import PERSONA_NAMES, ClientFor, Personas


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
@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
def test_it_answers_each_persona_as_the_role_allows(
    route: Route, persona: str, personas: Personas, client_for: ClientFor
) -> None:
    response = _call(client_for, personas, route, persona)
    expected = route.ok if persona in route.allowed else 404
    assert response.status_code == expected, f"{route.label} as {persona}: {response.status_code}, expected {expected}"


@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
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
