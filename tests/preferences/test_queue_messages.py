"""The comparison queue's rules and words: a skipped comparison (gold too) comes back once nothing else is left,
and the last save says, in one message, that it was saved, that nothing is left and why."""

import pytest

from accounts.models import AuditEvent
from annotation.models import Item, Skip
from preferences import services, submit_sql
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import letter_of, make_comparisons, one_gold_and_one_plain, set_mode

pytestmark = pytest.mark.django_db


def _judge(personas: Personas, item: Item, key: str) -> None:
    services.judgement_submit(
        user=personas.annotator, item=item, shown={"choice": letter_of(personas.annotator, item, 0)},
        rationale="", time_spent_ms=30_000, idempotency_key=key,
    )  # fmt: skip


def _served_gold(personas: Personas) -> Item:
    for _ in range(100):  # at the project's gold rate (50 % here)
        item = services.comparison_next(user=personas.annotator, project=personas.project)
        if item is not None and item.gold is not None:
            return item
    raise AssertionError("no gold item was served")


def test_it_brings_a_skipped_gold_comparison_back_once_nothing_else_is_left(
    personas: Personas, client_for: ClientFor, on_postgres: None
) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.5)
    gold, plain = one_gold_and_one_plain(personas.project, personas.data_lead)
    (other,) = make_comparisons(personas.project, personas.data_lead, 1)
    assert _served_gold(personas) == gold
    client = client_for(personas.annotator)
    answer = client.post(f"/projects/{personas.project.pk}/compare/{gold.pk}/skip/", HTTP_HX_REQUEST="true")
    body = answer.content.decode()
    assert "Skipped. It comes back to you once nothing else is left." in body
    assert Skip.objects.filter(item=gold, user=personas.annotator).count() == 1
    assert AuditEvent.objects.filter(action="queue.skip", object_id=str(gold.pk)).count() == 1
    # Put off: neither the database's draw nor its ORM twin hands it out again while other work is left.
    assert submit_sql.gold_unjudged(personas.annotator, personas.project) is None
    assert submit_sql.gold_unjudged_orm(personas.annotator, personas.project) is None
    served = []
    for n in range(2):
        item = services.comparison_next(user=personas.annotator, project=personas.project)
        assert item is not None
        served.append(item.pk)
        _judge(personas, item, f"plain-{n}")
    assert sorted(served) == sorted([plain.pk, other.pk]), "the plain comparisons first, the skipped gold after"
    back = services.comparison_next(user=personas.annotator, project=personas.project)
    assert back == gold, "with nothing else left, the skipped gold comparison comes back"
    again = client.post(f"/projects/{personas.project.pk}/compare/{gold.pk}/skip/", HTTP_HX_REQUEST="true")
    assert "Skipped, but nothing else is left for you, so here it is again." in again.content.decode()
    _judge(personas, gold, "gold")
    assert services.comparison_next(user=personas.annotator, project=personas.project) is None


def test_it_refuses_to_skip_a_gold_comparison_never_handed_out(personas: Personas, client_for: ClientFor) -> None:
    gold, _plain = one_gold_and_one_plain(personas.project, personas.data_lead)
    client = client_for(personas.annotator)
    answer = client.post(f"/projects/{personas.project.pk}/compare/{gold.pk}/skip/", HTTP_HX_REQUEST="true")
    assert "This item is not assigned to you." in answer.content.decode()
    assert not Skip.objects.filter(item=gold).exists()


def test_it_says_saved_and_nothing_left_and_why_in_one_message(personas: Personas, client_for: ClientFor) -> None:
    from annotation import services as annotation_services

    annotation_services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=2, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    first, second = make_comparisons(personas.project, personas.data_lead, 2)
    # A colleague judged the first comparison and holds the second's other slot.
    assert services.comparison_next(user=personas.reviewer, project=personas.project) == first
    services.judgement_submit(
        user=personas.reviewer, item=first, shown={"choice": "A"}, rationale="", time_spent_ms=30_000,
        idempotency_key="colleague",
    )  # fmt: skip
    assert services.comparison_next(user=personas.reviewer, project=personas.project) == second
    client = client_for(personas.annotator)
    assert services.comparison_next(user=personas.annotator, project=personas.project) == first
    _judge(personas, first, "mine-1")
    assert services.comparison_next(user=personas.annotator, project=personas.project) == second
    path = f"/projects/{personas.project.pk}/compare/{second.pk}/submit/"
    answer = client.post(
        path, {"choice": "A", "strength": "2", "idempotency_key": "last", "time_spent_ms": "30000"},
        HTTP_HX_REQUEST="true",
    )  # fmt: skip
    body = answer.content.decode()
    assert "Saved. That was your last comparison for now" in body
    assert "Here is the next comparison" not in body, "no 'next' above 'nothing left'"
    assert body.count('class="notice') == 0, "one message: the heading says it was saved"
    assert "You judged <b>2</b> comparisons." in body
    assert "1 of them still needs other people" in body, "the second still waits for the colleague"
    assert "what you skip comes back to you once nothing else is left" in body
