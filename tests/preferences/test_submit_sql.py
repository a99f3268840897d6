"""Each hand-written statement of ``preferences.submit_sql`` reads what its ORM twin reads, on the same data:
the comparison a submit names, the judgement under a key, the quality row (present or absent), the item's
results without gold, the quality row and results together, the gold pick, what a submit reads with its
project, and a plain judgement recorded in one statement. The PostgreSQL-only statements run where
PostgreSQL does; the others on every database."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from accounts import sql as accounts_sql
from accounts.models import AuditEvent, User
from accounts.services import audit_event_build
from accounts.sql import audit_hole
from annotation import services as annotation_services
from annotation.models import Draft, Item, Slot, SlotState
from preferences import submit_sql
from preferences.gold import gold_assign
from preferences.models import AnnotatorQuality, GoldAssignment, Judgement
from preferences.permissions import SETTINGS
from tests.conftest import Personas
from tests.preferences.helpers import make_comparisons, set_mode

pytestmark = pytest.mark.django_db


def _values(instance: Model | None) -> dict[str, Any] | None:
    if instance is None:
        return None
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def _sorted(results: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in results)


def _judge(item: Item, user: User, result: dict[str, Any], *, is_gold: bool = False) -> Judgement:
    return Judgement.objects.create(
        item=item, annotator=user, mode="pairwise", seed=1, displayed_order=[0, 1], result=result,
        displayed_result={"choice": "A"}, idempotency_key=f"k-{item.pk}-{user.pk}", is_gold=is_gold,
    )  # fmt: skip


def test_it_reads_the_comparison_a_submit_names_as_its_twin(personas: Personas) -> None:
    first, second = make_comparisons(personas.project, personas.data_lead, 2)
    Item.objects.filter(pk=second.pk).update(kind="sft")
    (elsewhere,) = make_comparisons(personas.other_project, personas.data_lead, 1)
    for project, pk in [
        (personas.project, first.pk),
        (personas.project, second.pk),
        (personas.project, elsewhere.pk),
        (personas.other_project, elsewhere.pk),
        (personas.project, first.pk + 10_000),
    ]:
        raw, orm = submit_sql.comparison_of_project(project, pk), submit_sql.comparison_of_project_orm(project, pk)
        assert _values(raw) == _values(orm)
    assert submit_sql.comparison_of_project(personas.project, first.pk) is not None


def test_it_reads_the_judgement_under_a_key_as_its_twin(personas: Personas) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    judgement = _judge(item, personas.annotator, {"winner": 1, "strength": 2})
    for key in (judgement.idempotency_key, "no-such-key"):
        assert _values(submit_sql.judgement_by_key(key)) == _values(submit_sql.judgement_by_key_orm(key))
    assert _values(submit_sql.judgement_by_key(judgement.idempotency_key)) == _values(judgement)


def test_it_reads_the_quality_row_present_or_absent_as_its_twin(personas: Personas) -> None:
    project, user = personas.project, personas.annotator
    assert submit_sql.quality_row(project, user) is None
    assert submit_sql.quality_row_orm(project, user) is None
    AnnotatorQuality.objects.create(project=project, annotator=user, gold_seen=3, gold_correct=2, flagged=True)
    AnnotatorQuality.objects.create(project=personas.other_project, annotator=user, gold_seen=9)
    raw = submit_sql.quality_row(project, user)
    assert raw is not None
    assert _values(raw) == _values(submit_sql.quality_row_orm(project, user))
    assert submit_sql.quality_row(project, personas.reviewer) is None


def test_it_reads_the_items_results_without_gold_as_its_twin(personas: Personas) -> None:
    item, other = make_comparisons(personas.project, personas.data_lead, 2)
    assert submit_sql.item_results(item) == submit_sql.item_results_orm(item) == []
    _judge(item, personas.annotator, {"winner": 0, "strength": 1})
    _judge(item, personas.reviewer, {"ranking": [[1], [0]]})
    _judge(item, personas.project_admin, {"winner": "tie", "strength": None}, is_gold=True)
    _judge(other, personas.annotator, {"winner": 1, "strength": 3})
    raw = submit_sql.item_results(item)
    assert _sorted(raw) == _sorted(submit_sql.item_results_orm(item))
    assert _sorted(raw) == _sorted([{"winner": 0, "strength": 1}, {"ranking": [[1], [0]]}])


def test_it_reads_the_quality_row_and_results_together_as_their_twins(personas: Personas, on_postgres: None) -> None:
    project, user = personas.project, personas.annotator
    (item,) = make_comparisons(project, personas.data_lead, 1)
    _judge(item, user, {"winner": 0, "strength": 2})
    _judge(item, personas.reviewer, {"winner": "both_bad", "strength": None}, is_gold=True)
    for with_row in (False, True):
        if with_row:
            AnnotatorQuality.objects.create(project=project, annotator=user, fast_judgements=4)
        quality, results = submit_sql.quality_and_item_results(project, user, item)
        twin_quality, twin_results = submit_sql.quality_and_item_results_orm(project, user, item)
        assert (quality is None) == (not with_row)
        assert _values(quality) == _values(twin_quality)
        assert _sorted(results) == _sorted(twin_results) == _sorted([{"winner": 0, "strength": 2}])


def test_it_picks_an_unjudged_gold_item_as_its_twin_does(personas: Personas, on_postgres: None) -> None:
    """The statement draws its start itself: its pick is one the twin makes from some start, the only one
    when one gold item is left, and none once the user judged them all."""
    set_mode(personas.project, personas.data_lead, "pairwise")
    items = make_comparisons(personas.project, personas.data_lead, 6)
    golds = items[1::2]
    Item.objects.filter(pk__in=[g.pk for g in golds]).update(gold=0)
    user, project = personas.annotator, personas.project
    for gold in golds:
        starts = range(items[0].pk, items[-1].pk + 2)
        twin_picks = {
            pick.pk for pick in (submit_sql.gold_unjudged_orm(user, project, start=s) for s in starts) if pick
        }
        for _ in range(5):
            pick = submit_sql.gold_unjudged(user, project)
            assert pick is not None
            assert pick.pk in twin_picks
            assert _values(pick) == _values(Item.objects.get(pk=pick.pk))
        gold_assign(user, gold)
        _judge(gold, user, {"winner": 0, "strength": 1}, is_gold=True)
    assert submit_sql.gold_unjudged(user, project) is None
    assert submit_sql.gold_unjudged_orm(user, project) is None
    assert submit_sql.gold_unjudged(personas.reviewer, project) is not None
    assert submit_sql.gold_unjudged_orm(personas.reviewer, project) is not None


def test_it_reads_what_a_submit_needs_with_its_project_as_its_twin(personas: Personas, on_postgres: None) -> None:
    """The comparison, its non-gold results and the annotator's quality row, read in the project's statement."""
    project, user = personas.project, personas.annotator
    first, second = make_comparisons(project, personas.data_lead, 2)
    Item.objects.filter(pk=second.pk).update(kind="sft")
    (elsewhere,) = make_comparisons(personas.other_project, personas.data_lead, 1)
    _judge(first, personas.reviewer, {"winner": 0, "strength": 2})
    _judge(first, personas.project_admin, {"winner": 1, "strength": None}, is_gold=True)
    for with_row in (False, True):
        if with_row:
            AnnotatorQuality.objects.create(project=project, annotator=user, gold_seen=2, flagged=True)
        for pk in (first.pk, second.pk, elsewhere.pk, first.pk + 10_000):
            also = submit_sql.comparison_for_submit_query(user, project.pk, pk)
            found = accounts_sql.project_with_perms_and_row(user, project.pk, SETTINGS, also)
            assert found is not None
            item, seen = submit_sql.comparison_for_submit_row(found[2])
            twin_item, twin_seen = submit_sql.comparison_for_submit_orm(project, user, pk)
            assert _values(item) == _values(twin_item)
            assert _values(seen.quality) == _values(twin_seen.quality)
            assert _sorted(seen.results) == _sorted(twin_seen.results)
            assert (item is not None) == (pk == first.pk)
            assert (twin_seen.quality is None) == (not with_row or item is None)
    also = submit_sql.comparison_for_submit_query(user, project.pk, first.pk)
    found = accounts_sql.project_with_perms_and_row(user, project.pk, SETTINGS, also)
    assert found is not None
    assert _sorted(submit_sql.comparison_for_submit_row(found[2])[1].results) == _sorted([{"winner": 0, "strength": 2}])


_AT = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)


class _Undo(Exception):
    """Rolls one twin's run back, so the other runs on the same data."""


def _record_then_undo(record: Any, item: Item, user: User, seen: submit_sql.ReadBeforeSubmit) -> dict[str, Any]:
    """Run one twin of ``judgement_record`` and give back what it returned and left (ids, which sequences give
    anew each time, named by what they point to), then roll it back."""
    fields = {
        "mode": "pairwise", "seed": 7, "displayed_order": [1, 0], "result": {"winner": 1, "strength": 2},
        "displayed_result": {"choice": "A", "strength": 2}, "rationale": "clearer", "time_spent_ms": 5000,
        "idempotency_key": "twin-key",
    }  # fmt: skip
    event = audit_event_build(
        actor=user, action="judgement.submit", object_type="preferences.judgement",
        object_id=audit_hole(submit_sql.JUDGEMENT_ID), project=item.project,
        payload={"item": item.pk, "result": fields["result"], "gold": False, "too_fast": False},
    )  # fmt: skip
    event.created_at = _AT  # both twins the same event
    box: dict[str, Any] = {}
    try:
        with transaction.atomic():
            recorded = record(item=item, user=user, seen=seen, fields=fields, created_at=event.created_at, event=event)
            judgement_id = recorded.judgement_id
            judgements = list(Judgement.objects.filter(item=item).order_by("pk").values())
            events = list(AuditEvent.objects.order_by("seq"))
            box["left"] = {
                "recorded": judgement_id is not None,
                "stored": _values(recorded.stored),
                "judgements": [{**j, "id": j["id"] == judgement_id} for j in judgements],
                "slots": list(Slot.objects.filter(item=item).order_by("pk").values("user_id", "state", "leased_until")),
                "drafts": list(Draft.objects.filter(item=item).values("user_id")),
                "events": [
                    (
                        e.action,
                        e.object_type,
                        # the judgement's event names it (another object's id may equal it by chance)
                        e.object_type == "preferences.judgement" and e.object_id == str(judgement_id),
                        e.payload,
                        e.seq,
                        e.prev_hash,
                        e.created_at,
                    )
                    for e in events
                ],
                "chain holds": all(e.hash == e.compute_hash() for e in events),
                "event returned": judgement_id is None or (event.hash, event.seq) == (events[-1].hash, events[-1].seq),
            }
            raise _Undo
    except _Undo:
        pass
    return box["left"]


@pytest.mark.parametrize(
    "situation", ["recorded", "not leased", "judged meanwhile", "quality changed", "resent", "key used elsewhere"]
)
def test_it_records_a_judgement_at_once_as_its_twin(personas: Personas, on_postgres: None, situation: str) -> None:
    """The one statement of a plain submit and its querysets leave the same rows: the judgement, the slot done,
    the draft gone, the event appended to the chain; or, when what the submit read no longer holds, nothing;
    or, when the user's slot was judged already, nothing and the judgement stored under the key."""
    project, user = personas.project, personas.annotator
    item, other = make_comparisons(project, personas.data_lead, 2)
    item.project = project
    AnnotatorQuality.objects.create(project=project, annotator=user)
    annotation_services.item_next(user=user, project=project, kind="comparison")
    annotation_services.draft_save(user=user, item=item, data={"choice": "A"}, time_spent_ms=100)
    seen = submit_sql.ReadBeforeSubmit(results=[], quality=submit_sql.quality_row_orm(project, user))
    if situation == "not leased":
        Slot.objects.filter(item=item, user=user).update(state=SlotState.FREE, user=None, leased_until=None)
    elif situation == "judged meanwhile":
        annotation_services.item_next(user=personas.reviewer, project=project, kind="comparison")
        _judge(item, personas.reviewer, {"winner": 0, "strength": 1})
    elif situation == "quality changed":
        AnnotatorQuality.objects.filter(project=project, annotator=user).update(updated_at=timezone.now())
    elif situation == "resent":
        Slot.objects.filter(item=item, user=user).update(state=SlotState.DONE, leased_until=None)
        Judgement.objects.filter(pk=_judge(item, user, {"winner": 1, "strength": 2}).pk).update(
            idempotency_key="twin-key"
        )
    elif situation == "key used elsewhere":
        Slot.objects.filter(item=item, user=user).update(state=SlotState.FREE, user=None, leased_until=None)
        Judgement.objects.filter(pk=_judge(other, personas.reviewer, {"winner": 0, "strength": 1}).pk).update(
            idempotency_key="twin-key"
        )
    raw = _record_then_undo(submit_sql.judgement_record, item, user, seen)
    orm = _record_then_undo(submit_sql.judgement_record_orm, item, user, seen)
    assert raw == orm
    assert raw["recorded"] == (situation == "recorded")
    assert (raw["stored"] is not None) == (situation in ("resent", "key used elsewhere"))
    assert raw["chain holds"]
    assert raw["event returned"]
    if situation == "recorded":
        assert [s["state"] for s in raw["slots"] if s["user_id"] == user.pk] == [SlotState.DONE]
        assert raw["drafts"] == []
        assert raw["events"][-1][:4] == (
            "judgement.submit", "preferences.judgement", True,
            {"item": item.pk, "result": {"winner": 1, "strength": 2}, "gold": False, "too_fast": False},
        )  # fmt: skip


@pytest.mark.parametrize("handed_before", [False, True])
def test_it_hands_out_a_gold_item_once_as_its_twin(personas: Personas, on_postgres: None, handed_before: bool) -> None:
    """The statement records the assignment and appends its event, as the querysets do; handed out again,
    neither changes anything."""
    project, user = personas.project, personas.annotator
    (item,) = make_comparisons(project, personas.data_lead, 1)
    Item.objects.filter(pk=item.pk).update(gold=0)
    item.project = project
    if handed_before:
        gold_assign(user, item)

    def run(assign: Any) -> dict[str, Any]:
        event = audit_event_build(
            actor=user, action="queue.lease", object_type="annotation.item", object_id=item.pk, project=project,
            payload={"gold": True},
        )  # fmt: skip
        event.created_at = _AT
        box: dict[str, Any] = {}
        try:
            with transaction.atomic():
                created = assign(user, item, served_at=_AT, event=event)
                events = list(AuditEvent.objects.order_by("seq"))
                box["left"] = {
                    "created": created,
                    "assignments": list(GoldAssignment.objects.values("item_id", "annotator_id", "served_at")),
                    "events": [(e.action, e.object_id, e.payload, e.seq, e.prev_hash, e.hash) for e in events],
                    "chain holds": all(e.hash == e.compute_hash() for e in events),
                    "event returned": not created or (event.seq, event.hash) == (events[-1].seq, events[-1].hash),
                }
                raise _Undo
        except _Undo:
            pass
        return box["left"]

    raw, orm = run(submit_sql.gold_assign), run(submit_sql.gold_assign_orm)
    assert raw == orm
    assert raw["created"] is not handed_before
    assert raw["chain holds"]
    assert raw["event returned"]
    assert len(raw["assignments"]) == 1
    assert [e[:3] for e in raw["events"]].count(("queue.lease", str(item.pk), {"gold": True})) == 1
