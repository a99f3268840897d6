import functools
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Role
from annotation import services
from annotation.models import Annotation, Draft, Slot, SlotState
from core.errors import DomainError
from tests.annotation.helpers import GOOD_SCORES, give_rubric, import_items, set_k
from tests.concurrency import run_at_once
from tests.conftest import Personas
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _submit(personas: Personas, user, slot: Slot, key: str = "k1") -> Annotation:  # type: ignore[no-untyped-def]
    return services.annotation_submit(
        user=user, item=slot.item, response="An ideal answer.", scores=GOOD_SCORES, flags=[], note="",
        time_spent_ms=1000, submit_key=key,
    )  # fmt: skip


def test_it_hands_out_priority_items_first_and_resumes_a_held_slot(personas: Personas) -> None:
    items = import_items(personas.project, personas.data_lead, 3)
    services.item_set_priority(actor=personas.data_lead, item=items[2], priority=5)
    first = services.item_next(user=personas.annotator, project=personas.project)
    assert first is not None
    assert first.item_id == items[2].pk
    leases = AuditEvent.objects.filter(action="queue.lease")
    assert leases.count() == 1
    again = services.item_next(user=personas.annotator, project=personas.project)
    assert again is not None
    assert again.pk == first.pk, "an unfinished slot comes back instead of a new one"
    assert again.item.pk == items[2].pk
    assert again.leased_until is not None
    assert first.leased_until is not None
    assert again.leased_until >= first.leased_until, "its lease is renewed"
    assert leases.count() == 1, "a renewed lease is no new lease"
    assert Slot.objects.filter(user=personas.annotator).count() == 1


def test_it_hands_an_item_to_k_distinct_annotators_and_never_the_same_item_twice(personas: Personas) -> None:
    give_rubric(personas.project, personas.data_lead)
    set_k(personas.project, personas.data_lead, 2)
    (item,) = import_items(personas.project, personas.data_lead, 1)
    third = MembershipFactory.create(project=personas.project, role=Role.ANNOTATOR).user
    a = services.item_next(user=personas.annotator, project=personas.project)
    b = services.item_next(user=personas.reviewer, project=personas.project)
    assert a is not None
    assert b is not None
    assert {a.item_id, b.item_id} == {item.pk}
    assert a.pk != b.pk
    assert services.item_next(user=third, project=personas.project) is None, "k=2 is never exceeded"
    _submit(personas, personas.annotator, a)
    assert services.item_next(user=personas.annotator, project=personas.project) is None
    assert Slot.objects.filter(item=item, state=SlotState.DONE).count() == 1


def test_it_returns_expired_leases_to_the_queue(personas: Personas) -> None:
    import_items(personas.project, personas.data_lead, 1)
    slot = services.item_next(user=personas.annotator, project=personas.project)
    assert slot is not None
    assert services.item_next(user=personas.reviewer, project=personas.project) is None
    Slot.objects.filter(pk=slot.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    taken = services.item_next(user=personas.reviewer, project=personas.project)
    assert taken is not None
    assert taken.pk == slot.pk
    assert taken.user == personas.reviewer


def test_it_brings_skipped_items_back_after_everything_else(personas: Personas) -> None:
    items = import_items(personas.project, personas.data_lead, 2)
    first = services.item_next(user=personas.annotator, project=personas.project)
    assert first is not None
    services.item_skip(user=personas.annotator, item=first.item)
    second = services.item_next(user=personas.annotator, project=personas.project)
    assert second is not None
    assert second.item_id != first.item_id
    services.item_skip(user=personas.annotator, item=second.item)
    back = services.item_next(user=personas.annotator, project=personas.project)
    assert back is not None
    assert back.item_id in {i.pk for i in items}


def test_it_stores_one_annotation_when_submitting_twice(personas: Personas) -> None:
    give_rubric(personas.project, personas.data_lead)
    import_items(personas.project, personas.data_lead, 1)
    slot = services.item_next(user=personas.annotator, project=personas.project)
    assert slot is not None
    first = _submit(personas, personas.annotator, slot, key="same-key")
    second = _submit(personas, personas.annotator, slot, key="same-key")
    assert first.pk == second.pk
    assert Annotation.objects.count() == 1


def test_it_refuses_a_resend_with_changed_content_and_the_submission_stands(personas: Personas) -> None:
    """The page came back with the Back button and was changed: its key was used, so nothing is saved, and
    the annotator is told so instead of "Submitted"."""
    give_rubric(personas.project, personas.data_lead)
    import_items(personas.project, personas.data_lead, 1)
    slot = services.item_next(user=personas.annotator, project=personas.project)
    assert slot is not None
    first = _submit(personas, personas.annotator, slot, key="page-key")
    with pytest.raises(DomainError, match="changes made after submitting were not saved") as refused:
        services.annotation_submit(
            user=personas.annotator, item=slot.item, response="A better answer, written after Back.",
            scores=GOOD_SCORES, flags=[], note="", time_spent_ms=1000, submit_key="page-key",
        )  # fmt: skip
    assert refused.value.status == 409
    first.refresh_from_db()
    assert first.response == "An ideal answer."
    assert Annotation.objects.count() == 1
    assert AuditEvent.objects.filter(action="annotation.submit").count() == 1


def test_it_extends_the_lease_and_keeps_the_draft_on_autosave(personas: Personas) -> None:
    (item,) = import_items(personas.project, personas.data_lead, 1)
    slot = services.item_next(user=personas.annotator, project=personas.project)
    assert slot is not None
    Slot.objects.filter(pk=slot.pk).update(leased_until=timezone.now() + timedelta(seconds=5))
    draft = services.draft_save(
        user=personas.annotator, item=item, data={"response": "half done", "scores": {"helpful": "3"}},
        time_spent_ms=12_000,
    )  # fmt: skip
    slot.refresh_from_db()
    assert slot.leased_until is not None
    assert slot.leased_until > timezone.now() + timedelta(minutes=29)
    assert draft is not None
    assert draft.data["response"] == "half done"
    assert draft.time_spent_ms == 12_000


def test_it_lets_no_older_tab_overwrite_what_a_newer_one_saved(personas: Personas) -> None:
    (item,) = import_items(personas.project, personas.data_lead, 1)
    assert services.item_next(user=personas.annotator, project=personas.project) is not None

    def save(page: str, text: str) -> Draft | None:
        return services.draft_save(
            user=personas.annotator, item=item, data={"response": text}, time_spent_ms=1, page=page
        )

    old_tab = services.draft_page_token()
    time.sleep(0.01)
    new_tab = services.draft_page_token()
    save(old_tab, "typed in the first tab")
    save(old_tab, "typed in the first tab, more")  # a tab never conflicts with itself
    with pytest.raises(DomainError, match="also open in another tab") as refused:
        save(new_tab, "what the second tab showed when it opened")
    assert refused.value.conflict
    assert Draft.objects.get(item=item).data["response"] == "typed in the first tab, more"

    time.sleep(0.01)
    reloaded = services.draft_page_token()  # reloaded: it shows the first tab's work, and may save over it
    save(reloaded, "the second tab, after a reload")
    with pytest.raises(DomainError, match="also open in another tab"):
        save(old_tab, "the first tab again, now the older one")
    assert Draft.objects.get(item=item).data["response"] == "the second tab, after a reload"
    assert save("", "a save from no page (a refused submit) is always kept") is not None


@pytest.mark.django_db(transaction=True)
def test_it_never_hands_a_slot_twice_to_concurrent_next_item_calls(personas: Personas, on_postgres: None) -> None:
    set_k(personas.project, personas.data_lead, 2)
    import_items(personas.project, personas.data_lead, 40)
    workers = [MembershipFactory.create(project=personas.project, role=Role.ANNOTATOR).user for _ in range(16)]
    claimed: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def work(user) -> None:  # type: ignore[no-untyped-def]
        for _ in range(8):
            slot = services.item_next(user=user, project=personas.project)
            if slot is None:
                break
            with lock:
                claimed.append((slot.pk, slot.item_id, user.pk))
            Slot.objects.filter(pk=slot.pk).update(state=SlotState.DONE)  # finish it, take another

    assert run_at_once([functools.partial(work, u) for u in workers]) == []
    slots = [c[0] for c in claimed]
    assert len(slots) == len(set(slots)), "no slot was handed out twice"
    assert len(claimed) == 80, "all 40 items × k=2 were handed out"
    per_item: dict[int, set[int]] = {}
    for _, item_id, user_id in claimed:
        per_item.setdefault(item_id, set()).add(user_id)
    assert all(len(users) == 2 for users in per_item.values()), "k distinct annotators per item, never more"


def test_it_adds_and_removes_free_slots_only_when_k_changes(personas: Personas) -> None:
    items = import_items(personas.project, personas.data_lead, 3)
    held = services.item_next(user=personas.annotator, project=personas.project)
    assert held is not None
    set_k(personas.project, personas.data_lead, 3)
    assert all(Slot.objects.filter(item=i).count() == 3 for i in items)
    set_k(personas.project, personas.data_lead, 1)
    assert Slot.objects.filter(project=personas.project).count() == 3
    held.refresh_from_db()
    assert held.state == SlotState.LEASED, "work in progress is never taken away"


@pytest.mark.django_db(transaction=True)
def test_it_never_deadlocks_an_autosave_racing_the_submit(personas: Personas, on_postgres: None) -> None:
    """Autosave and submit take the slot, then the draft: the opposite order deadlocked on PostgreSQL."""
    give_rubric(personas.project, personas.data_lead)
    import_items(personas.project, personas.data_lead, 12)
    for n in range(12):
        slot = services.item_next(user=personas.annotator, project=personas.project)
        assert slot is not None
        item = slot.item
        services.draft_save(user=personas.annotator, item=item, data={"response": "x"}, time_spent_ms=1)

        def autosave(item=item) -> None:  # type: ignore[no-untyped-def]
            services.draft_save(user=personas.annotator, item=item, data={"response": "y"}, time_spent_ms=2)

        def submit(item=item, key=f"race-{n}") -> None:  # type: ignore[no-untyped-def]
            services.annotation_submit(
                user=personas.annotator, item=item, response="Done.", scores=GOOD_SCORES, flags=[], note="",
                time_spent_ms=3, submit_key=key,
            )  # fmt: skip

        assert run_at_once([autosave, submit], together=True) == []
    assert Annotation.objects.filter(annotator=personas.annotator).count() == 12


@pytest.mark.django_db(transaction=True)
def test_it_gives_two_calls_of_one_user_at_once_one_item(personas: Personas, on_postgres: None) -> None:
    """A double click or two tabs ask for the next item at the same moment: both find no slot of the user's and
    may claim two slots of one item, which the (item, user) index refuses; the refused call starts again and
    gets the slot the other one leased instead of an error."""
    set_k(personas.project, personas.data_lead, 2)
    import_items(personas.project, personas.data_lead, 30)
    for _ in range(30):
        got: list[int] = []

        def ask(got=got) -> None:  # type: ignore[no-untyped-def]
            slot = services.item_next(user=personas.annotator, project=personas.project)
            assert slot is not None
            got.append(slot.item_id)

        assert run_at_once([ask, ask], together=True) == []
        held = Slot.objects.filter(project=personas.project, user=personas.annotator, state=SlotState.LEASED)
        assert set(got) <= set(held.values_list("item_id", flat=True)), "each call got a slot the user holds"
        held.update(state=SlotState.DONE)
    per_item = Slot.objects.filter(project=personas.project, user=personas.annotator).values_list("item_id", flat=True)
    assert len(per_item) == len(set(per_item)), "never two slots of one item"
