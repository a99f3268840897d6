"""A project's rubric and annotation settings through the API: the rubric and settings pages' services and
limits, the pages and the API seeing the same values."""

import json

import pytest
from django.test import Client

from accounts.models import AuditEvent
from annotation import selectors
from annotation.models import Slot
from tests.annotation.helpers import GOOD_SCORES, give_rubric, import_items
from tests.conftest import ClientFor, Personas

pytestmark = pytest.mark.django_db

RUBRIC = {
    "guidelines": "Answer as a careful adviser.",
    "criteria": [
        {"name": "Correct", "scale": "pass_fail", "weight": 2},
        {"name": "Topic", "scale": "categories", "categories": ["cards", "loans"], "required": False},
    ],
}


def _put(client: Client, path: str, body: object):  # type: ignore[no-untyped-def]
    return client.put(path, data=json.dumps(body), content_type="application/json")


def _patch(client: Client, path: str, body: object):  # type: ignore[no-untyped-def]
    return client.patch(path, data=json.dumps(body), content_type="application/json")


def test_it_lets_a_data_lead_save_the_rubric_and_members_read_it(personas: Personas, client_for: ClientFor) -> None:
    path = f"/api/v1/projects/{personas.project.pk}/rubric/"
    assert client_for(personas.annotator).get(path).json()["version"] is None
    saved = _put(client_for(personas.data_lead), path, RUBRIC)
    assert saved.status_code == 201
    body = client_for(personas.annotator).get(path).json()
    assert body["version"] == 1
    assert body["in_use"] is False
    assert [(c["key"], c["scale"], c["required"], c["weight"]) for c in body["criteria"]] == [
        ("correct", "pass_fail", True, 2.0), ("topic", "categories", False, 1.0),
    ]  # fmt: skip
    assert body["criteria"][1]["categories"] == ["cards", "loans"]
    # The page shows what the API saved.
    page = client_for(personas.annotator).get(f"/projects/{personas.project.pk}/rubric/").content.decode()
    assert "Answer as a careful adviser." in page
    assert "Topic" in page
    again = _put(client_for(personas.data_lead), path, {**RUBRIC, "guidelines": "Shorter."})
    assert again.status_code == 200
    assert again.json()["version"] == 1
    assert _put(client_for(personas.annotator), path, RUBRIC).status_code == 404


def test_it_makes_a_new_version_when_saving_a_rubric_that_annotations_use(
    personas: Personas, client_for: ClientFor
) -> None:
    from annotation import services

    give_rubric(personas.project, personas.data_lead)
    item = import_items(personas.project, personas.data_lead, 1)[0]
    slot = services.item_next(user=personas.annotator, project=personas.project)
    assert slot is not None
    assert slot.item == item
    annotation = services.annotation_submit(
        user=personas.annotator, item=item, response="Done", scores=GOOD_SCORES, flags=[], note="",
        time_spent_ms=1, submit_key="k",
    )  # fmt: skip
    path = f"/api/v1/projects/{personas.project.pk}/rubric/"
    assert client_for(personas.data_lead).get(path).json()["in_use"] is True
    response = _put(client_for(personas.data_lead), path, RUBRIC)
    assert response.status_code == 201
    assert response.json()["version"] == 2
    annotation.refresh_from_db()
    assert annotation.rubric_version.version == 1
    assert AuditEvent.objects.filter(action="rubric.create_version", payload__version=2).exists()


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ([{"name": "Ok", "scale": "stars"}], "scale"),
        ([{"scale": "pass_fail"}], "name"),
        ([{"name": "Ok", "scale": "pass_fail", "weight": -1}], "weight"),
        ([{"name": "Ok", "scale": "pass_fail", "weight": "heavy"}], "weight"),
    ],
)
def test_it_names_a_criterion_that_does_not_validate(
    personas: Personas, client_for: ClientFor, criteria: list[dict[str, object]], field: str
) -> None:
    path = f"/api/v1/projects/{personas.project.pk}/rubric/"
    response = _put(
        client_for(personas.data_lead), path, {"criteria": [{"name": "Fine", "scale": "likert5"}, *criteria]}
    )
    assert response.status_code == 400
    assert response.json()["criteria"].keys() == {"1"}  # the second criterion, counting from 0
    assert list(response.json()["criteria"]["1"]) == [field]
    assert selectors.current_rubric(personas.project) is None


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ([{"name": "Ok", "scale": "pass_fail"}, {"name": "Topic", "scale": "categories", "categories": ["one"]}],
         "criteria[1].categories"),
        ([{"name": "Ok", "scale": "pass_fail"}, {"name": "OK", "key": "ok", "scale": "likert5"}], "criteria[1].name"),
        ([], "criteria"),
    ],
)  # fmt: skip
def test_it_names_the_criterion_in_the_rubric_services_refusals(
    personas: Personas, client_for: ClientFor, criteria: list[dict[str, object]], field: str
) -> None:
    response = _put(
        client_for(personas.data_lead), f"/api/v1/projects/{personas.project.pk}/rubric/", {"criteria": criteria}
    )
    assert response.status_code == 400
    body = response.json()
    assert body.get("field", next(iter(body))) == field
    assert selectors.current_rubric(personas.project) is None


def test_it_lets_a_data_lead_read_and_change_the_annotation_settings(personas: Personas, client_for: ClientFor) -> None:
    give_rubric(personas.project, personas.data_lead)
    item = import_items(personas.project, personas.data_lead, 1)[0]
    path = f"/api/v1/projects/{personas.project.pk}/annotation-settings/"
    lead = client_for(personas.data_lead)
    assert lead.get(path).json() | {"updated_at": None} == {
        "annotators_per_item": 1, "lease_minutes": 30, "pii_mode": "replace", "pii_patterns": [], "pii_terms": [],
        "pii_uncertain": "scrub", "pii_phone_region": "GB", "updated_at": None,
    }  # fmt: skip
    patterns = [{"type": "ACCOUNT", "pattern": r"ACC-\d{6}"}]
    response = _patch(
        lead,
        path,
        {"annotators_per_item": 3, "pii_patterns": patterns, "pii_terms": ["Northwind"], "pii_uncertain": "keep",
         "pii_phone_region": "de"},
    )  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert (body["annotators_per_item"], body["lease_minutes"]) == (3, 30)  # left out: kept
    assert body["pii_patterns"] == [{"type": "ACCOUNT", "pattern": r"ACC-\d{6}"}]
    assert Slot.objects.filter(item=item).count() == 3  # the service's slot resize ran
    stored = selectors.annotation_settings(personas.project)
    assert stored.pii_patterns == [["ACCOUNT", r"ACC-\d{6}"]]
    assert stored.pii_terms == ["Northwind"]
    assert (stored.pii_uncertain, stored.pii_phone_region) == ("keep", "DE")
    assert AuditEvent.objects.filter(action="annotation.settings_update").count() == 1
    # The settings page shows what the API saved.
    page = lead.get(f"/projects/{personas.project.pk}/annotation-settings/").content.decode()
    assert "ACCOUNT ACC-" in page
    assert "Northwind" in page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"annotators_per_item": 11}, "annotators_per_item"),
        ({"annotators_per_item": 0}, "annotators_per_item"),
        ({"lease_minutes": 4}, "lease_minutes"),
        ({"lease_minutes": 1441}, "lease_minutes"),
        ({"pii_mode": "ignore"}, "pii_mode"),
        ({"pii_patterns": [{"type": "account", "pattern": "ACC-1"}]}, "pii_patterns"),
        ({"pii_patterns": [{"type": "ACCOUNT", "pattern": "ACC-("}]}, "pii_patterns"),
        ({"pii_patterns": [{"type": "ACCOUNT"}]}, "pii_patterns"),
        ({"pii_uncertain": "maybe"}, "pii_uncertain"),
        ({"pii_phone_region": "XX"}, "pii_phone_region"),
    ],
)
def test_it_refuses_annotation_settings_as_the_page_refuses_them(
    personas: Personas, client_for: ClientFor, body: dict[str, object], field: str
) -> None:
    response = _patch(
        client_for(personas.data_lead), f"/api/v1/projects/{personas.project.pk}/annotation-settings/", body
    )
    assert response.status_code == 400
    answer = response.json()
    assert answer.get("field", next(iter(answer))) == field
    assert not AuditEvent.objects.filter(action="annotation.settings_update").exists()
