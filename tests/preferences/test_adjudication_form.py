"""The adjudication form names each candidate by the number its label shows (and every judgement summary)."""

import re

import pytest

from annotation import services as annotation_services
from preferences import services
from preferences.models import Adjudication
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import letter_of, make_comparisons, set_mode

pytestmark = pytest.mark.django_db


def test_it_gives_each_final_answer_the_value_its_label_shows(personas: Personas, client_for: ClientFor) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    annotation_services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=2, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    for n, (user, candidate) in enumerate([(personas.annotator, 0), (personas.project_admin, 1)]):
        services.comparison_next(user=user, project=personas.project)
        services.judgement_submit(
            user=user, item=item, shown={"choice": letter_of(user, item, candidate), "strength": 2},
            rationale="", time_spent_ms=30_000, idempotency_key=f"d{n}",
        )  # fmt: skip
    adjudication = Adjudication.objects.get(item=item)
    path = f"/projects/{personas.project.pk}/adjudication/{adjudication.pk}/"
    client = client_for(personas.reviewer)
    page = client.get(path).content.decode()
    options = re.findall(r'<input type="radio" name="winner" value="(\w+)"> ([^<]+)</label>', page)
    assert options == [
        ("1", "Candidate 1 is better"), ("2", "Candidate 2 is better"), ("tie", "Tie"), ("both_bad", "Both bad")
    ]  # fmt: skip
    assert "<td>1 clearly better</td>" in page
    assert "<td>2 clearly better</td>" in page
    refused = client.post(path, {"winner": "0", "note": ""})
    assert refused.status_code == 400, "0 names no candidate"
    assert client.post(path, {"winner": "2", "note": "Candidate 2 cites the fee."}).status_code == 302
    adjudication.refresh_from_db()
    assert adjudication.result == {"winner": 1}, "stored as the candidate's id, as the API takes it"
    assert "Candidate 2 cites the fee." in client.get(f"/projects/{personas.project.pk}/adjudication/").content.decode()
