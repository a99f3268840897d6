"""The assignment queue: leases and the next item, each user's slot of an item, drafts, skips and priority.

Views and the API call these through ``annotation.services``; preferences' judgements share the slots
(``own_slot_locked``, ``slot_finish``) and the drafts. The hand-written statements of the hot path ("next",
the slot lock, the end of a slot's work) and their ORM twins are in ``annotation.queue_sql``."""

import json
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_build, audit_event_record
from accounts.sql import audit_hole
from annotation import queue_sql, selectors
from annotation.models import Annotation, AnnotationState, Draft, Item, Skip, Slot, SlotState
from core.errors import DomainError
from core.http import parse_id

_DRAFT_LIMIT = 1_000_000  # characters of JSON; a draft is one person's work on one item


def _lease(project: Project) -> timedelta:
    return timedelta(minutes=selectors.annotation_settings(project).lease_minutes)


def item_next(*, user: User, project: Project, kind: str = "sft") -> Slot | None:
    """Hand ``user`` their next slot, or None when nothing is left for them.

    First their own unfinished slot (so a closed tab resumes where it was), then a free slot of an item
    they have never held, priority and edge cases first, items they skipped last. On PostgreSQL the
    candidate row is taken with ``FOR UPDATE SKIP LOCKED``, so concurrent callers never get one slot
    twice; there are exactly ``k`` slots per item, so ``k`` is never exceeded.

    Two calls of one user at once (a double click that submitted twice, two tabs) may both find no slot of
    theirs and claim two slots of one item; the unique (item, user) index refuses the second once the first
    commits, and that call then starts again and finds the first one's slot as its own: both get one item.
    """
    for attempt in (1, 2):
        try:
            return _item_next_once(user=user, project=project, kind=kind)
        except IntegrityError as exc:
            if attempt == 2 or not _is_one_slot_per_user(exc):
                raise
    raise AssertionError("unreachable")


def _is_one_slot_per_user(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)  # psycopg names the constraint; SQLite serialises writers
    return getattr(diag, "constraint_name", None) == "one_slot_per_user"


def _item_next_once(*, user: User, project: Project, kind: str) -> Slot | None:
    now = timezone.now()
    until = now + _lease(project)
    # A claim is audited; the slot and the item it names are only known once claimed: holes the claim fills.
    lease_event = audit_event_build(
        actor=user,
        action="queue.lease",
        object_type="annotation.item",
        object_id=audit_hole(queue_sql.LEASED_ITEM),
        project=project,
        payload={"slot": audit_hole(queue_sql.LEASED_SLOT), "until": until},
    )
    if connection.vendor == "postgresql":  # the claim and its event in one statement
        with own_transaction():
            slot, _ = queue_sql.next_slot(
                user=user, project=project, kind=kind, now=now, until=until, lease_event=lease_event
            )
        return slot
    with transaction.atomic():
        slot, _ = queue_sql.next_slot_orm(
            user=user, project=project, kind=kind, now=now, until=until, lease_event=lease_event
        )
        return slot


def own_transaction() -> AbstractContextManager[Any]:
    """For one statement that must be all or nothing: alone, PostgreSQL runs it as its own transaction (no
    BEGIN or COMMIT sent, no round trip for either); inside a caller's transaction, a savepoint, so a refused
    statement can be answered without failing the caller's work."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def item_set_priority(*, actor: User, item: Item, priority: int) -> Item:
    """Move an item up (or down) the queue; higher goes first. Raises ``DomainError`` outside -100..100."""
    if not -100 <= priority <= 100:
        raise DomainError("Priority goes from -100 to 100.", field="priority")
    with transaction.atomic():
        Item.objects.filter(pk=item.pk).update(priority=priority)
        Slot.objects.filter(item=item).update(priority=priority)
        item.priority = priority
        audit_event_record(
            actor=actor, action="item.set_priority", target=item, project=item.project, payload={"priority": priority}
        )
    return item


def own_slot_locked(user: User, item: Item, *, lock_item: bool = False) -> Slot | None:
    """The user's slot of ``item``, locked until the transaction ends (PostgreSQL); lock it before the draft.

    ``lock_item`` locks the item's row too, for a submit that then reads what the item's other slots gave:
    a second submit of the item waits for this one to commit, so of two last submits at once the later one
    sees both results (each alone would see only its own and the ones before). Databases without row locks
    (SQLite) run one writer at a time anyway."""
    return queue_sql.user_slot_locked(user, item, lock_item=lock_item)


def slot_finish(*, user: User, item: Item, slot: Slot | None) -> None:
    """The user's work on ``item`` is stored: their leased slot is done and their draft goes."""
    if slot is not None and slot.state == SlotState.LEASED:
        queue_sql.slot_done_and_draft_delete(slot_id=slot.pk, item_id=item.pk, user_id=user.pk)
        slot.state, slot.leased_until = SlotState.DONE, None
    else:
        queue_sql.draft_delete(item_id=item.pk, user_id=user.pk)


# Time on task is counted by the page while its tab is visible; more than a week on one item is a clock
# or a client gone wrong, and is stored as a week (an absurd number would overflow the column).
MAX_TIME_ON_TASK_MS = 7 * 24 * 3600 * 1000


def time_on_task(time_spent_ms: int) -> int:
    return min(max(0, int(time_spent_ms)), MAX_TIME_ON_TASK_MS)


def draft_page_token() -> str:
    """The token of a page that is about to be rendered with a form: "<random>.<ms now>"."""
    return f"{uuid.uuid4().hex[:16]}.{int(time.time() * 1000)}"


def _page_opened_ms(page: str) -> int | None:
    return parse_id(page.partition(".")[2])


def draft_save(*, user: User, item: Item, data: dict[str, Any], time_spent_ms: int, page: str = "") -> Draft | None:
    """Autosave the user's work on an item and extend their lease (an active annotator keeps the slot).
    Drafts are not audited: nothing is decided until submission. Returns None (saves nothing) when the
    item is already submitted, e.g. an autosave that fires just after the submit.

    ``page`` is the token of the page that sends it (``draft_page_token``). Two tabs on one item: once a
    tab saved, a tab opened before that save may not overwrite it (it shows older work); it is refused as
    a conflict until it is reloaded. The saving tab itself never conflicts with its own saves."""
    with transaction.atomic():
        # Lock order everywhere: the user's slot, then the draft. The submits lock the slot first and delete
        # the draft; taking the draft first here deadlocked an autosave racing a submit on PostgreSQL.
        slot = own_slot_locked(user, item)
        annotation = Annotation.objects.filter(item=item, annotator=user).first()
        revising = annotation is not None and annotation.state == AnnotationState.REJECTED
        if (annotation is not None or (slot is not None and slot.state == SlotState.DONE)) and not revising:
            # Submitted (an annotation, or a judgement, which finishes the slot), perhaps while this autosave
            # waited on the slot lock: a draft now would outlive the submission.
            return None
        if len(json.dumps(data)) > _DRAFT_LIMIT:
            raise DomainError("This draft is too large to save.")
        draft, created = Draft.objects.select_for_update().get_or_create(item=item, user=user)
        opened = _page_opened_ms(page)
        if (
            not created
            and opened is not None
            and draft.page
            and draft.page != page
            and draft.updated_at.timestamp() * 1000 > opened
        ):
            raise DomainError(
                "This item is also open in another tab or window, where it was changed after this page was "
                "opened: nothing here was saved. Copy what you need, then reload to continue from the newer "
                "version.",
                status=409,
            )
        draft.page = page or draft.page
        draft.data = data
        draft.time_spent_ms = max(draft.time_spent_ms, time_on_task(time_spent_ms))
        draft.updated_at = timezone.now()
        draft.save()
        if slot is not None and slot.state == SlotState.LEASED:
            slot.leased_until = timezone.now() + _lease(item.project)
            slot.save(update_fields=["leased_until"])
    return draft


def item_skip(*, user: User, item: Item) -> None:
    """Give the slot back; the item returns to the queue, and to this user only after everything else."""
    with transaction.atomic():
        slot = own_slot_locked(user, item)
        if slot is None or slot.state != SlotState.LEASED:
            raise DomainError("This item is not assigned to you.")
        slot.user = None
        slot.state = SlotState.FREE
        slot.leased_until = None
        slot.save(update_fields=["user", "state", "leased_until"])
        Skip.objects.create(item=item, user=user)
        audit_event_record(actor=user, action="queue.skip", target=item, project=item.project, payload={})
