"""Comparison settings through the API: the comparison settings page's service and limits (shares as
fractions here, whole percentages on the page)."""

import json

import pytest

from accounts.models import AuditEvent
from preferences import selectors
from tests.conftest import ClientFor, Personas

pytestmark = pytest.mark.django_db


def _path(personas: Personas) -> str:
    return f"/api/v1/projects/{personas.project.pk}/comparison-settings/"


def test_it_lets_a_data_lead_read_and_change_the_comparison_settings(personas: Personas, client_for: ClientFor) -> None:
    lead = client_for(personas.data_lead)
    assert lead.get(_path(personas)).json() | {"updated_at": None} == {
        "mode": "pairwise", "rationale_required": False, "gold_rate": 0.1, "gold_accuracy_threshold": 0.7,
        "gold_minimum": 5, "fast_fraction": 0.25, "adjudication_threshold": 0.67, "updated_at": None,
    }  # fmt: skip
    body = {"mode": "ranking", "rationale_required": True, "gold_rate": 0.15, "adjudication_threshold": 0.5}
    response = lead.patch(_path(personas), data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    assert response.json()["gold_minimum"] == 5  # left out: kept
    stored = selectors.preference_settings(personas.project)
    assert (stored.mode, stored.rationale_required, stored.gold_rate, stored.adjudication_threshold) == (
        "ranking", True, 0.15, 0.5,
    )  # fmt: skip
    assert AuditEvent.objects.get(action="preferences.settings_update").payload["gold_rate"] == 0.15
    # The settings page shows what the API saved, as percentages.
    page = lead.get(f"/projects/{personas.project.pk}/comparison-settings/").content.decode()
    assert 'name="gold_rate" value="15"' in page
    assert client_for(personas.reviewer).get(_path(personas)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gold_rate": 0.6}, "gold_rate"),  # the page allows at most 50 %
        ({"gold_rate": -0.1}, "gold_rate"),
        ({"gold_accuracy_threshold": 1.5}, "gold_accuracy_threshold"),
        ({"fast_fraction": 2}, "fast_fraction"),
        ({"adjudication_threshold": "most"}, "adjudication_threshold"),
        ({"gold_minimum": 0}, "gold_minimum"),
        ({"gold_minimum": 1001}, "gold_minimum"),
        ({"mode": "vibes"}, "mode"),
        ({"rationale_required": "perhaps"}, "rationale_required"),
    ],
)
def test_it_refuses_comparison_settings_as_the_page_refuses_them(
    personas: Personas, client_for: ClientFor, body: dict[str, object], field: str
) -> None:
    response = client_for(personas.data_lead).patch(
        _path(personas), data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not AuditEvent.objects.filter(action="preferences.settings_update").exists()


def test_it_refuses_a_gold_minimum_out_of_the_pages_range_in_the_service(personas: Personas) -> None:
    from core.errors import DomainError
    from preferences.services import preference_settings_update

    with pytest.raises(DomainError) as refused:
        preference_settings_update(actor=personas.data_lead, project=personas.project, gold_minimum=0)
    assert refused.value.field == "gold_minimum"
