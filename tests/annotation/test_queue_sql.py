"""Each hand-written statement of ``annotation.queue_sql`` does what its ORM twin does: both run on the same
data (the first one's changes rolled back before the second runs), and give the same slot with the same
item, and leave the same slots and drafts behind."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import AuditEvent, User
from accounts.services import audit_event_build
from accounts.sql import audit_hole
from annotation import queue_sql, services
from annotation.models import Draft, Item, ItemState, Skip, Slot, SlotState
from tests.annotation.helpers import import_items
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


class _Undo(Exception):
    """Rolls one twin's run back, so the other runs on the same data."""


def _values(instance: Model | None) -> dict[str, Any] | None:
    if instance is None:
        return None
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def _rows() -> dict[str, list[Any]]:
    return {
        "slots": list(Slot.objects.order_by("pk").values()),
        "drafts": list(Draft.objects.order_by("pk").values()),
    }


def _run_then_undo(run: Callable[[], Any]) -> tuple[Any, dict[str, list[Any]]]:
    box: dict[str, Any] = {}
    try:
        with transaction.atomic():
            box["result"] = run()
            box["rows"] = _rows()
            raise _Undo
    except _Undo:
        pass
    return box["result"], box["rows"]


def _assert_twins(sql: Callable[[], Any], orm: Callable[[], Any]) -> Any:
    before = _rows()
    sql_result, sql_rows = _run_then_undo(sql)
    assert _rows() == before, "the run was rolled back"
    orm_result, orm_rows = _run_then_undo(orm)
    assert sql_result == orm_result
    assert sql_rows == orm_rows
    return sql_result


# --- "next" ----------------------------------------------------------------------------------------------
# Each situation returns the user who asks and the item "next" gives them (None: nothing).


def _own_slot(p: Personas) -> tuple[User, Item | None]:
    import_items(p.project, p.data_lead, 3)
    own = services.item_next(user=p.annotator, project=p.project)
    assert own is not None
    return p.annotator, own.item


def _expired_lease_before_a_free_slot_of_higher_priority(p: Personas) -> tuple[User, Item | None]:
    items = import_items(p.project, p.data_lead, 2)
    services.item_set_priority(actor=p.data_lead, item=items[1], priority=5)
    Slot.objects.filter(item=items[0]).update(
        user=p.reviewer, state=SlotState.LEASED, leased_until=timezone.now() - timedelta(seconds=1)
    )
    return p.annotator, items[0]


def _a_lease_still_running(p: Personas) -> tuple[User, Item | None]:
    (item,) = import_items(p.project, p.data_lead, 1)
    Slot.objects.filter(item=item).update(
        user=p.reviewer, state=SlotState.LEASED, leased_until=timezone.now() + timedelta(minutes=5)
    )
    return p.annotator, None


def _free_slot_by_priority(p: Personas) -> tuple[User, Item | None]:
    items = import_items(p.project, p.data_lead, 3)
    services.item_set_priority(actor=p.data_lead, item=items[1], priority=5)
    services.item_set_priority(actor=p.data_lead, item=items[2], priority=-5)
    return p.annotator, items[1]


def _skipped_items_last(p: Personas) -> tuple[User, Item | None]:
    items = import_items(p.project, p.data_lead, 2)
    services.item_set_priority(actor=p.data_lead, item=items[0], priority=5)
    Skip.objects.create(item=items[0], user=p.annotator)
    return p.annotator, items[1]


def _only_skipped_items_left(p: Personas) -> tuple[User, Item | None]:
    items = import_items(p.project, p.data_lead, 2)
    for item in items:
        Skip.objects.create(item=item, user=p.annotator)
    return p.annotator, items[0]


def _an_item_held_before(p: Personas) -> tuple[User, Item | None]:
    services.annotation_settings_update(
        actor=p.data_lead, project=p.project, annotators_per_item=2, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    (item,) = import_items(p.project, p.data_lead, 1)
    Slot.objects.filter(item=item, index=0).update(user=p.annotator, state=SlotState.DONE)
    return p.annotator, None


def _an_item_on_hold(p: Personas) -> tuple[User, Item | None]:
    items = import_items(p.project, p.data_lead, 2)
    Item.objects.filter(pk=items[0].pk).update(state=ItemState.ON_HOLD)
    return p.annotator, items[1]


def _nothing_left(p: Personas) -> tuple[User, Item | None]:
    (item,) = import_items(p.project, p.data_lead, 1)
    Slot.objects.filter(item=item).update(user=p.reviewer, state=SlotState.DONE)
    return p.annotator, None


@pytest.mark.parametrize(
    "situation",
    [
        _own_slot,
        _expired_lease_before_a_free_slot_of_higher_priority,
        _a_lease_still_running,
        _free_slot_by_priority,
        _skipped_items_last,
        _only_skipped_items_left,
        _an_item_held_before,
        _an_item_on_hold,
        _nothing_left,
    ],
)
def test_it_gives_on_next_what_its_querysets_give(
    personas: Personas, on_postgres: None, situation: Callable[[Personas], tuple[User, Item | None]]
) -> None:
    user, expected = situation(personas)
    now = timezone.now()
    until = now + timedelta(minutes=30)

    def twin(next_slot: Callable[..., tuple[Slot | None, bool]], kind: str) -> Callable[[], Any]:
        def run() -> Any:
            slot, claimed = next_slot(user=user, project=personas.project, kind=kind, now=now, until=until)
            return None if slot is None else (_values(slot), _values(slot.item), claimed)

        return run

    result = _assert_twins(twin(queue_sql.next_slot, "sft"), twin(queue_sql.next_slot_orm, "sft"))
    if expected is None:
        assert result is None
    else:
        slot, item, claimed = result
        assert (slot["user_id"], slot["state"], slot["leased_until"]) == (user.pk, SlotState.LEASED, until)
        assert item == _values(Item.objects.get(pk=expected.pk))
        assert claimed == (situation is not _own_slot)
    assert _assert_twins(twin(queue_sql.next_slot, "comparison"), twin(queue_sql.next_slot_orm, "comparison")) is None


# --- The user's slot of an item --------------------------------------------------------------------------


@pytest.mark.parametrize("lock_item", [False, True])
@pytest.mark.parametrize("held", [True, False])
def test_it_locks_the_slot_its_queryset_reads(personas: Personas, lock_item: bool, held: bool) -> None:
    items = import_items(personas.project, personas.data_lead, 2)
    if held:
        assert services.item_next(user=personas.annotator, project=personas.project) is not None
    item = Slot.objects.get(user=personas.annotator).item if held else items[0]

    def twin(read: Callable[..., Slot | None]) -> Callable[[], Any]:
        return lambda: _values(read(personas.annotator, item, lock_item=lock_item))

    result = _assert_twins(twin(queue_sql.user_slot_locked), twin(queue_sql.user_slot_locked_orm))
    assert (result is not None) == held


# --- The end of a slot's work ----------------------------------------------------------------------------


def test_it_leaves_done_slots_and_deleted_drafts_as_the_querysets_do(personas: Personas) -> None:
    import_items(personas.project, personas.data_lead, 2)
    slot = services.item_next(user=personas.annotator, project=personas.project)
    other = services.item_next(user=personas.reviewer, project=personas.project)
    assert slot is not None
    assert other is not None
    mine = Draft.objects.create(item=slot.item, user=personas.annotator, data={"response": "mine"})
    kept = [(other.item, personas.annotator), (slot.item, personas.reviewer), (other.item, personas.reviewer)]
    for item, user in kept:
        Draft.objects.create(item=item, user=user, data={"response": "kept"})
    ids = {"slot_id": slot.pk, "item_id": slot.item_id, "user_id": personas.annotator.pk}

    def finish(done: Callable[..., None]) -> Callable[[], Any]:
        return lambda: done(**ids)

    _assert_twins(finish(queue_sql.slot_done_and_draft_delete), finish(queue_sql.slot_done_and_draft_delete_orm))
    _, rows = _run_then_undo(finish(queue_sql.slot_done_and_draft_delete))
    assert [(s["id"], s["state"], s["leased_until"]) for s in rows["slots"] if s["id"] == slot.pk] == [
        (slot.pk, SlotState.DONE, None)
    ]
    assert mine.pk not in [d["id"] for d in rows["drafts"]]
    assert len(rows["drafts"]) == 3, "only the user's draft of the item goes"

    draft_ids = {"item_id": slot.item_id, "user_id": personas.annotator.pk}
    _assert_twins(lambda: queue_sql.draft_delete(**draft_ids), lambda: queue_sql.draft_delete_orm(**draft_ids))
    _, rows = _run_then_undo(lambda: queue_sql.draft_delete(**draft_ids))
    assert [d["data"] for d in rows["drafts"]] == [{"response": "kept"}] * 3
    assert _values(Slot.objects.get(pk=slot.pk)) == _values(slot), "the slot is left as it was"


@pytest.mark.parametrize("situation", [_own_slot, _free_slot_by_priority, _only_skipped_items_left, _nothing_left])
def test_it_appends_the_claims_event_in_its_statement_as_its_querysets_do(
    personas: Personas, on_postgres: None, situation: Callable[[Personas], tuple[User, Item | None]]
) -> None:
    """With the lease's event, the statement appends it when (and only when) it claims a slot, linked to the
    chain as the querysets and ``audit_event_record`` link it; a renewed lease appends nothing."""
    user, _ = situation(personas)
    now = timezone.now()
    until = now + timedelta(minutes=30)

    def twin(next_slot: Callable[..., tuple[Slot | None, bool]]) -> Callable[[], Any]:
        def run() -> Any:
            event = audit_event_build(
                actor=user, action="queue.lease", object_type="annotation.item",
                object_id=audit_hole(queue_sql.LEASED_ITEM), project=personas.project,
                payload={"slot": audit_hole(queue_sql.LEASED_SLOT), "until": until},
            )  # fmt: skip
            event.created_at = now
            slot, claimed = next_slot(
                user=user, project=personas.project, kind="sft", now=now, until=until, lease_event=event
            )
            events = list(AuditEvent.objects.order_by("seq"))
            assert all(e.hash == e.compute_hash() for e in events)
            left = [(e.action, e.object_type, e.object_id, e.payload, e.seq, e.prev_hash, e.hash) for e in events]
            if claimed:
                assert slot is not None
                assert (event.seq, event.hash, event.object_id) == (events[-1].seq, events[-1].hash, str(slot.item_id))
            return None if slot is None else (_values(slot), claimed), left

        return run

    before = AuditEvent.objects.count()
    (slot_and_claim, events) = _assert_twins(twin(queue_sql.next_slot), twin(queue_sql.next_slot_orm))
    claimed = slot_and_claim is not None and slot_and_claim[1]
    assert claimed == (situation in (_free_slot_by_priority, _only_skipped_items_left))
    assert len(events) == before + claimed, "one event for a claim, none for a renewal or nothing"
    if claimed:
        slot = slot_and_claim[0]
        assert events[-1][:4] == (
            "queue.lease", "annotation.item", str(slot["item_id"]),
            {"slot": slot["index"], "until": until.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
        )  # fmt: skip
