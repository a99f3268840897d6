"""The assignment queue: leases and the next item, each user's slot of an item, drafts, skips and priority.

Views and the API call these through ``annotation.services``; preferences' judgements share the slots
(``own_slot_locked``, ``slot_finish``) and the drafts."""

import functools
import json
import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation import selectors
from annotation.models import Annotation, AnnotationState, Draft, Item, ItemState, Skip, Slot, SlotState
from core import rawrows
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
    with transaction.atomic():
        if connection.vendor == "postgresql":
            params = {"project": project.pk, "user": user.pk, "kind": kind, "now": now, "until": until}
            slot, claimed = _slot_with_item(_queue_sql(skipped=False), params)
            if slot is None:
                slot, claimed = _slot_with_item(_queue_sql(skipped=True), params)
        else:
            slot, claimed = _own_or_claimed_slot(user=user, project=project, kind=kind, now=now, until=until)
        if slot is not None and claimed:
            audit_event_record(
                actor=user,
                action="queue.lease",
                object_type="annotation.item",
                object_id=slot.item_id,
                project=project,
                payload={"slot": slot.index, "until": slot.leased_until},
            )
        return slot


def _own_or_claimed_slot(*, user: User, project: Project, kind: str, now: Any, until: Any) -> tuple[Slot | None, bool]:
    """``item_next`` as querysets (databases other than PostgreSQL): the user's own leased slot, its lease
    renewed, or a newly claimed one; and whether it was claimed."""
    own = (
        Slot.objects.select_for_update(of=("self",))
        .filter(project=project, user=user, state=SlotState.LEASED, item__state=ItemState.OPEN, item__kind=kind)
        .order_by("leased_until")
        .first()
    )
    if own is not None:
        own.leased_until = until
        own.save(update_fields=["leased_until"])
        return own, False
    for include_skipped in (False, True):
        slot = _claim_free_slot(user=user, project=project, kind=kind, now=now, include_skipped=include_skipped)
        if slot is not None:
            slot.user = user
            slot.state = SlotState.LEASED
            slot.leased_until = until
            slot.save(update_fields=["user", "state", "leased_until"])
            return slot, True
    return None, False


# PostgreSQL: "next" in one statement (a second only when the only slots left are of items the user skipped),
# written out because compiling the querysets above cost more Python time than PostgreSQL spent running them.
# The user's own leased slot comes first; only when there is none (a one-time filter: the claim branches are
# never executed otherwise) the expired leases, then the free slots, each walking the slot_queue_order index
# in queue order and stopping at the first row it can lock. Each branch sits in a subquery because FOR UPDATE
# is not allowed in a UNION's own branches. One UPDATE renews the own slot (user and state unchanged) or leases
# the claimed one, and the slot comes back with its item and whether it was claimed. "Never held a slot of
# this item" is one probe of the (item, user) unique index per row walked (see _claim_free_slot).
_NEXT_SQL = """
WITH own AS (
  SELECT s.id FROM annotation_slot s JOIN annotation_item i ON i.id = s.item_id
   WHERE s.project_id = %(project)s AND s.user_id = %(user)s AND s.state = 'leased'
     AND i.state = 'open' AND i.kind = %(kind)s
   ORDER BY s.leased_until LIMIT 1 FOR UPDATE OF s
), target AS (
  SELECT id, false AS claimed FROM own
  UNION ALL
  SELECT id, true FROM (
    SELECT id FROM ({expired}) AS expired
    UNION ALL
    SELECT id FROM ({free}) AS free
    LIMIT 1
  ) AS pick WHERE NOT EXISTS (SELECT FROM own)
), updated AS (
  UPDATE annotation_slot s SET user_id = %(user)s, state = 'leased', leased_until = %(until)s
    FROM target WHERE s.id = target.id RETURNING s.*, target.claimed
)
SELECT {slot}, {item}, updated.claimed FROM updated JOIN annotation_item item ON item.id = updated.item_id
"""

_CLAIM_BRANCH = """
SELECT s.id FROM annotation_slot s JOIN annotation_item i ON i.id = s.item_id
 WHERE s.project_id = %(project)s AND {state} AND i.state = 'open' AND i.kind = %(kind)s
   AND (SELECT h.id FROM annotation_slot h WHERE h.item_id = s.item_id AND h.user_id = %(user)s LIMIT 1) IS NULL
   AND s.item_id {skipped} IN (SELECT k.item_id FROM annotation_skip k JOIN annotation_item ki ON ki.id = k.item_id
                               WHERE k.user_id = %(user)s AND ki.project_id = %(project)s)
 ORDER BY s.priority DESC, s.item_id, s.index LIMIT 1 FOR UPDATE OF s SKIP LOCKED
"""


@functools.cache
def _queue_sql(*, skipped: bool) -> str:
    """ "next" among items the user has not skipped, or (``skipped``) among those they have."""
    negate = "" if skipped else "NOT"
    return _NEXT_SQL.format(
        expired=_CLAIM_BRANCH.format(state="s.state = 'leased' AND s.leased_until < %(now)s", skipped=negate),
        free=_CLAIM_BRANCH.format(state="s.state = 'free'", skipped=negate),
        slot=rawrows.columns(Slot, "updated"),
        item=rawrows.columns(Item, "item"),
    )


def _slot_with_item(sql: str, params: dict[str, Any]) -> tuple[Slot | None, bool]:
    """The slot (with its item) that ``sql`` leased, and whether it was newly claimed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None, False
    width, item_end = rawrows.width(Slot), rawrows.width(Slot) + rawrows.width(Item)
    slot = rawrows.instance(Slot, row[:width])
    slot.item = rawrows.instance(Item, row[width:item_end])
    return slot, bool(row[item_end])


def _claim_free_slot(*, user: User, project: Project, kind: str, now: Any, include_skipped: bool) -> Slot | None:
    """Expired leases first (abandoned work, usually none), then free slots. Each query filters on one
    ``state`` so it walks the ``slot_queue_order`` index in queue order and stops at the first row it can
    lock: no sort over the whole queue."""
    # "Never held a slot of this item" is a correlated subquery on the (item, user) unique index, one probe
    # per row walked. As a NOT EXISTS, PostgreSQL made it an anti-join that, with statistics taken before
    # anyone held a slot, compared each row walked with every slot the user ever held: 60 ms for an
    # annotator 900 items ahead of the others at 50k items, growing with the square of the lead.
    held = Slot.objects.filter(item=OuterRef("item"), user=user).values("pk")[:1]
    candidates = (
        Slot.objects.filter(project=project, item__state=ItemState.OPEN, item__kind=kind)
        .alias(held=Subquery(held))
        .filter(held__isnull=True)
    )
    skipped = Skip.objects.filter(user=user, item__project=project).values("item_id")
    candidates = candidates.filter(item_id__in=skipped) if include_skipped else candidates.exclude(item_id__in=skipped)
    for pool in (
        candidates.filter(state=SlotState.LEASED, leased_until__lt=now),
        candidates.filter(state=SlotState.FREE),
    ):
        slot = (
            pool.order_by("-priority", "item_id", "index")
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("item")
            .first()
        )
        if slot is not None:
            return slot
    return None


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


# ``Slot.objects.select_for_update().filter(item=item, user=user).first()`` (one row at most) and the end of a
# slot's work, written out: every submit runs them, and compiling the querysets cost more than running them.
_USER_SLOT_SQL = "SELECT {columns} FROM annotation_slot s WHERE s.item_id = %s AND s.user_id = %s{lock}"
# With the item's row: NO KEY UPDATE, so work on one item is taken in turn (two such locks wait for each other)
# while the foreign-key checks of other rows that point at the item (KEY SHARE) never wait for it.
_USER_SLOT_AND_ITEM_SQL = """
SELECT {columns} FROM annotation_slot s JOIN annotation_item i ON i.id = s.item_id
 WHERE s.item_id = %s AND s.user_id = %s FOR UPDATE OF s FOR NO KEY UPDATE OF i
"""
_SLOT_DONE_SQL = "UPDATE annotation_slot SET state = %s, leased_until = NULL WHERE id = %s"
_DRAFT_DELETE_SQL = "DELETE FROM annotation_draft WHERE item_id = %s AND user_id = %s"
# PostgreSQL: both in one statement (a data-modifying WITH), one round trip fewer on every submit.
_SLOT_DONE_AND_DRAFT_DELETE_SQL = """
WITH draft AS (DELETE FROM annotation_draft WHERE item_id = %s AND user_id = %s)
UPDATE annotation_slot SET state = %s, leased_until = NULL WHERE id = %s
"""


def own_slot_locked(user: User, item: Item, *, lock_item: bool = False) -> Slot | None:
    """The user's slot of ``item``, locked until the transaction ends (PostgreSQL); lock it before the draft.

    ``lock_item`` locks the item's row too, for a submit that then reads what the item's other slots gave:
    a second submit of the item waits for this one to commit, so of two last submits at once the later one
    sees both results (each alone would see only its own and the ones before). Databases without row locks
    (SQLite) run one writer at a time anyway."""
    columns = rawrows.columns(Slot, "s")
    if not connection.features.has_select_for_update:
        return rawrows.one(Slot, _USER_SLOT_SQL.format(columns=columns, lock=""), [item.pk, user.pk])
    if lock_item:
        return rawrows.one(Slot, _USER_SLOT_AND_ITEM_SQL.format(columns=columns), [item.pk, user.pk])
    return rawrows.one(Slot, _USER_SLOT_SQL.format(columns=columns, lock=" FOR UPDATE"), [item.pk, user.pk])


def slot_finish(*, user: User, item: Item, slot: Slot | None) -> None:
    """The user's work on ``item`` is stored: their leased slot is done and their draft goes."""
    with connection.cursor() as cursor:
        if slot is not None and slot.state == SlotState.LEASED:
            if connection.vendor == "postgresql":
                cursor.execute(_SLOT_DONE_AND_DRAFT_DELETE_SQL, [item.pk, user.pk, SlotState.DONE, slot.pk])
            else:
                cursor.execute(_SLOT_DONE_SQL, [SlotState.DONE, slot.pk])
                cursor.execute(_DRAFT_DELETE_SQL, [item.pk, user.pk])
            slot.state, slot.leased_until = SlotState.DONE, None
        else:
            cursor.execute(_DRAFT_DELETE_SQL, [item.pk, user.pk])


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
