"""Objects of one project never answer under another's address.

Every matrix route whose path names an object of a project (item, comparison, annotation, import, adjudication,
release and its files, training job, adapter, membership, judged annotator, evaluation) is tried with project B's object
inside project A's URL. Every persona gets 404, site staff too: staff hold every permission, but the helpers
look objects up by (project, pk), and B's object does not belong to A. Nothing of project B changes.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Model
from django.forms.models import model_to_dict
from django.test import Client

from accounts.models import AuditEvent
from tests.access_matrix import ROUTES, Route
from tests.conftest import PERSONA_NAMES, ClientFor, Personas

# The matrix helpers that build an object of the route's project (named, not imported: they are private there).
OBJECT_HELPERS = frozenset({
    "_item", "_annotation", "_batch", "_comparison", "_adjudication", "_release", "_release_file", "_job",
    "matrix_adapter", "matrix_reward_model", "_annotator_membership", "_judged_annotator", "_generation_run",
    "_deployment_target", "matrix_served_target", "matrix_pending_request", "_evaluation", "_scoring_run",
    "_reward_model",
})  # fmt: skip
CROSS_ROUTES = [route for route in ROUTES if OBJECT_HELPERS & set(route.path.__code__.co_names)]
# The body fields that name an object of the project.
ID_FIELDS = frozenset({"item", "a", "b", "release", "adapter", "target", "reward_model"})
BODY_ROUTES = [
    route for route in ROUTES if route not in CROSS_ROUTES and OBJECT_HELPERS & set(route.data.__code__.co_names)
]


def project_b(personas: Personas) -> Personas:
    """The same cast seen from project B, where the outsider holds every role."""
    b = personas.outsider
    b_project = personas.other_project
    return dataclasses.replace(
        personas, project=b_project, annotator=b, reviewer=b, data_lead=b, project_admin=b, approver=b, made={}
    )


def _fingerprint(b: Personas) -> dict[str, object]:
    rows: dict[str, object] = {
        key: model_to_dict(type(obj)._default_manager.get(pk=obj.pk))
        for key, obj in b.made.items()
        if isinstance(obj, Model)
    }
    rows["audit"] = AuditEvent.objects.filter(project=b.project).count()
    return rows


def _call(client: Client, route: Route, path: str, data: dict[str, Any]) -> Any:
    if route.api and not route.multipart and route.method in {"post", "patch", "put"}:
        return getattr(client, route.method)(path, data=json.dumps(data), content_type="application/json")
    return getattr(client, route.method)(path, data)


def test_it_tries_the_routes_that_name_an_object() -> None:
    labels = {route.label for route in CROSS_ROUTES}
    assert {"annotate item (not mine)", "compare submit", "release page", "training job", "api adapter"} <= labels
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert (
        f"on the {len(CROSS_ROUTES)} routes that name one: {len(CROSS_ROUTES)} × {len(PERSONA_NAMES)} personas"
        in readme
    )
    assert f"the {len(BODY_ROUTES)} routes that take such an id in the body" in readme


@pytest.mark.parametrize("route", CROSS_ROUTES, ids=[r.label for r in CROSS_ROUTES])
def test_it_answers_404_for_another_projects_object(route: Route, personas: Personas, client_for: ClientFor) -> None:
    b = project_b(personas)
    path_in_b = route.path(b)
    path = path_in_b.replace(f"/projects/{b.project.pk}/", f"/projects/{personas.project.pk}/", 1)
    assert path != path_in_b
    data = route.data(b)
    before = _fingerprint(b)
    for persona in PERSONA_NAMES:
        response = _call(client_for(personas.by_name(persona)), route, path, data)
        assert response.status_code == 404, f"{route.label} as {persona}: {response.status_code} at {path}"
    assert _fingerprint(b) == before


@pytest.mark.parametrize("route", BODY_ROUTES, ids=[r.label for r in BODY_ROUTES])
def test_it_answers_another_projects_object_in_a_body_as_a_missing_one(
    route: Route, personas: Personas, client_for: ClientFor
) -> None:
    b = project_b(personas)
    path = route.path(personas)
    foreign = route.data(b)
    missing = {key: 10**9 if key in ID_FIELDS else value for key, value in foreign.items()}
    assert missing != foreign
    before = _fingerprint(b)
    for persona in PERSONA_NAMES:
        client = client_for(personas.by_name(persona))
        answer, expected = _call(client, route, path, foreign), _call(client, route, path, missing)
        assert answer.status_code == expected.status_code, f"{route.label} as {persona}: {answer.status_code}"
        if route.api:
            assert answer.json() == expected.json()
    assert _fingerprint(b) == before
