"""The annotation app's hand-written SQL: the queue's statements on the annotators' hot path, each beside its
ORM twin (the querysets it stands for, which other databases run and ``tests/annotation/test_queue_sql.py``
compares it with on PostgreSQL).

Every annotator's "next" and submit runs these; written out, they spare that path the Python time of
compiling querysets (``bench/import_and_queue.py`` times "next"). Table and column names come from the
models' ``_meta`` and states from the enums; each statement is built once per database vendor
(``functools.cache``) and its rows become model instances through ``core.rawrows``.
"""

import functools
from typing import Any

from django.db import connection
from django.db.models import OuterRef, Subquery

from accounts.models import AuditEvent, Project, User
from accounts.sql import audit_append, audit_append_call, audit_append_orm
from annotation.models import Draft, Item, ItemState, Skip, Slot, SlotState
from core import rawrows


def _build(template: str, **extra: str) -> str:
    return template.format(
        slot=rawrows.Table(Slot),
        item=rawrows.Table(Item),
        skip=rawrows.Table(Skip),
        draft=rawrows.Table(Draft),
        leased=rawrows.literal(SlotState.LEASED),
        free=rawrows.literal(SlotState.FREE),
        open=rawrows.literal(ItemState.OPEN),
        **extra,
    )


# --- "next" ----------------------------------------------------------------------------------------------

# PostgreSQL: "next" in one statement (a second only when the only slots left are of items the user skipped).
# The user's own leased slot comes first; only when there is none (a one-time filter: the claim branches are
# never executed otherwise) the expired leases, then the free slots, each walking the slot_queue_order index
# in queue order and stopping at the first row it can lock. Each branch sits in a subquery because FOR UPDATE
# is not allowed in a UNION's own branches. One UPDATE renews the own slot (user and state unchanged) or leases
# the claimed one, and the slot comes back with its item and whether it was claimed. "Never held a slot of
# this item" is one probe of the (item, user) unique index per row walked (see ``next_slot_orm``).
_NEXT_SQL = """
WITH own AS (
  SELECT s.{slot.id} AS id FROM {slot} s JOIN {item} i ON i.{item.id} = s.{slot.item}
   WHERE s.{slot.project} = %(project)s AND s.{slot.user} = %(user)s AND s.{slot.state} = {leased}
     AND i.{item.state} = {open} AND i.{item.kind} = %(kind)s
   ORDER BY s.{slot.leased_until} LIMIT 1 FOR UPDATE OF s
), target AS (
  SELECT id, false AS claimed FROM own
  UNION ALL
  SELECT id, true FROM (
    SELECT id FROM ({expired}) AS expired
    UNION ALL
    SELECT id FROM ({free_branch}) AS free
    LIMIT 1
  ) AS pick WHERE NOT EXISTS (SELECT FROM own)
), updated AS (
  UPDATE {slot} s SET {slot.user} = %(user)s, {slot.state} = {leased}, {slot.leased_until} = %(until)s
    FROM target WHERE s.{slot.id} = target.id RETURNING s.*, target.claimed
)
SELECT {slot_columns}, {item_columns}, updated.claimed
  FROM updated JOIN {item} item ON item.{item.id} = updated.{slot.item}
"""

_CLAIM_BRANCH = """
SELECT s.{slot.id} AS id FROM {slot} s JOIN {item} i ON i.{item.id} = s.{slot.item}
 WHERE s.{slot.project} = %(project)s AND {pool} AND i.{item.state} = {open} AND i.{item.kind} = %(kind)s
   AND (SELECT h.{slot.id} FROM {slot} h WHERE h.{slot.item} = s.{slot.item} AND h.{slot.user} = %(user)s LIMIT 1)
       IS NULL
   AND s.{slot.item} {negate} IN (SELECT k.{skip.item} FROM {skip} k JOIN {item} ki ON ki.{item.id} = k.{skip.item}
                                  WHERE k.{skip.user} = %(user)s AND ki.{item.project} = %(project)s)
 ORDER BY s.{slot.priority} DESC, s.{slot.item}, s.{slot.index} LIMIT 1 FOR UPDATE OF s SKIP LOCKED
"""


@functools.cache
def _next_sql(vendor: str, *, skipped: bool) -> str:
    """ "next" among items the user has not skipped, or (``skipped``) among those they have."""
    negate = "" if skipped else "NOT"
    expired = _build("s.{slot.state} = {leased} AND s.{slot.leased_until} < %(now)s")
    free = _build("s.{slot.state} = {free}")
    return _build(
        _NEXT_SQL,
        expired=_build(_CLAIM_BRANCH, pool=expired, negate=negate),
        free_branch=_build(_CLAIM_BRANCH, pool=free, negate=negate),
        slot_columns=rawrows.columns(Slot, "updated"),
        item_columns=rawrows.columns(Item, "item"),
    )


# With the claim's audit event appended by the same statement (``accounts.sql.audit_append_call``), only when
# a slot was claimed (a renewed lease is not audited): the claim and its event commit together, with no
# transaction of its own around them. OFFSET 0 keeps the subquery apart, so the condition on the outer row gates
# the call (a one-time filter) instead of filtering what the call returned; the queue tests check a renewal.
_AUDITED = " LEFT JOIN LATERAL (SELECT * FROM {call} WHERE updated.claimed OFFSET 0) AS audit ON true"
LEASED_ITEM, LEASED_SLOT = "object_id", "slot"  # the holes of the lease event the statement fills


@functools.cache
def _audited_next_sql(vendor: str, *, skipped: bool, call: str) -> str:
    plain = _next_sql(vendor, skipped=skipped)
    head, claimed, tail = plain.rpartition("updated.claimed")
    columns = ", audit.event_id, audit.event_seq, audit.event_prev_hash, audit.event_hash"
    return head + claimed + columns + tail.rstrip() + _AUDITED.format(call=call)


@functools.cache
def _lease_fill(vendor: str) -> dict[str, str]:
    return {
        LEASED_ITEM: _build("to_json(updated.{slot.item}::text)::text"),
        LEASED_SLOT: _build("to_json(updated.{slot.index})::text"),
    }


def next_slot(
    *, user: User, project: Project, kind: str, now: Any, until: Any, lease_event: AuditEvent | None = None
) -> tuple[Slot | None, bool]:
    """PostgreSQL: the user's own leased slot, its lease renewed, or a newly claimed one (with its item);
    and whether it was claimed. With ``lease_event`` (its item and slot the holes ``LEASED_ITEM`` and
    ``LEASED_SLOT``) a claim appends it in the same statement. What ``next_slot_orm`` does."""
    params: dict[str, Any] = {"project": project.pk, "user": user.pk, "kind": kind, "now": now, "until": until}
    call = None
    if lease_event is not None:
        call, audit_params = audit_append_call(lease_event, _lease_fill(connection.vendor))
        params.update(audit_params)
    for skipped in (False, True):
        if call is None:
            sql = _next_sql(connection.vendor, skipped=skipped)
        else:
            sql = _audited_next_sql(connection.vendor, skipped=skipped, call=call)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is not None:
            width, item_end = rawrows.width(Slot), rawrows.width(Slot) + rawrows.width(Item)
            slot = rawrows.instance(Slot, row[:width])
            slot.item = rawrows.instance(Item, row[width:item_end])
            claimed = bool(row[item_end])
            if lease_event is not None and claimed:
                lease_event.pk, lease_event.seq, lease_event.prev_hash, lease_event.hash = row[item_end + 1 :]
                lease_event.object_id = str(slot.item_id)
                lease_event.payload = {**lease_event.payload, LEASED_SLOT: slot.index}
                lease_event._state.adding = False
            return slot, claimed
    return None, False


def next_slot_orm(
    *, user: User, project: Project, kind: str, now: Any, until: Any, lease_event: AuditEvent | None = None
) -> tuple[Slot | None, bool]:
    """``next_slot`` as querysets (databases other than PostgreSQL); call it inside a transaction."""
    slot, claimed = _next_slot_orm(user=user, project=project, kind=kind, now=now, until=until)
    if lease_event is not None and slot is not None and claimed:
        lease_event.object_id = str(slot.item_id)
        lease_event.payload = {**lease_event.payload, LEASED_SLOT: slot.index}
        (audit_append if connection.vendor == "postgresql" else audit_append_orm)(lease_event)
    return slot, claimed


def _next_slot_orm(*, user: User, project: Project, kind: str, now: Any, until: Any) -> tuple[Slot | None, bool]:
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


def _claim_free_slot(*, user: User, project: Project, kind: str, now: Any, include_skipped: bool) -> Slot | None:
    """Expired leases first (abandoned work, usually none), then free slots. Each query filters on one
    ``state`` so it walks the ``slot_queue_order`` index in queue order and stops at the first row it can
    lock: no sort over the whole queue."""
    # "Never held a slot of this item" is a correlated subquery on the (item, user) unique index, one probe
    # per row walked. As a NOT EXISTS, PostgreSQL made it an anti-join that, with statistics taken before
    # anyone held a slot, compared each row walked with every slot the user ever held: its cost grew with the
    # square of how far an annotator was ahead of the others (bench/import_and_queue.py times "next").
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


# --- The user's slot of an item --------------------------------------------------------------------------

_USER_SLOT_SQL = "SELECT {columns} FROM {slot} s WHERE s.{slot.item} = %s AND s.{slot.user} = %s{lock}"
# With the item's row: NO KEY UPDATE, so work on one item is taken in turn (two such locks wait for each other)
# while the foreign-key checks of other rows that point at the item (KEY SHARE) never wait for it.
_USER_SLOT_AND_ITEM_SQL = """
SELECT {columns} FROM {slot} s JOIN {item} i ON i.{item.id} = s.{slot.item}
 WHERE s.{slot.item} = %s AND s.{slot.user} = %s FOR UPDATE OF s FOR NO KEY UPDATE OF i
"""


@functools.cache
def _user_slot_sql(vendor: str, *, lock: bool, lock_item: bool) -> str:
    columns = rawrows.columns(Slot, "s")
    if lock_item:
        return _build(_USER_SLOT_AND_ITEM_SQL, columns=columns)
    return _build(_USER_SLOT_SQL, columns=columns, lock=" FOR UPDATE" if lock else "")


def user_slot_locked(user: User, item: Item, *, lock_item: bool = False) -> Slot | None:
    """The user's slot of ``item``, locked (with the item's row: ``lock_item``) where the database has row
    locks; what ``user_slot_locked_orm`` reads."""
    lock = connection.features.has_select_for_update
    sql = _user_slot_sql(connection.vendor, lock=lock, lock_item=lock and lock_item)
    return rawrows.one(Slot, sql, [item.pk, user.pk])


def user_slot_locked_orm(user: User, item: Item, *, lock_item: bool = False) -> Slot | None:
    """``user_slot_locked`` as querysets: the item's row first (``lock_item``), then the slot."""
    if lock_item:
        Item.objects.select_for_update(no_key=True).filter(pk=item.pk).values_list("pk").first()
        return Slot.objects.select_for_update(of=("self",)).filter(item=item, user=user).first()
    return Slot.objects.select_for_update().filter(item=item, user=user).first()


# --- The end of a slot's work ----------------------------------------------------------------------------

_SLOT_DONE_SQL = "UPDATE {slot} SET {slot.state} = %s, {slot.leased_until} = NULL WHERE {slot.id} = %s"
_DRAFT_DELETE_SQL = "DELETE FROM {draft} WHERE {draft.item} = %s AND {draft.user} = %s"
# PostgreSQL: both in one statement (a data-modifying WITH), one round trip fewer on every submit.
_SLOT_DONE_AND_DRAFT_DELETE_SQL = """
WITH deleted AS (DELETE FROM {draft} WHERE {draft.item} = %s AND {draft.user} = %s)
UPDATE {slot} SET {slot.state} = %s, {slot.leased_until} = NULL WHERE {slot.id} = %s
"""


@functools.cache
def _finish_sql(vendor: str, template: str) -> str:
    return _build(template)


def slot_done_and_draft_delete(*, slot_id: int, item_id: int, user_id: int) -> None:
    """The slot is done (its lease gone) and the user's draft of the item deleted; what
    ``slot_done_and_draft_delete_orm`` does."""
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(
                _finish_sql(vendor, _SLOT_DONE_AND_DRAFT_DELETE_SQL), [item_id, user_id, SlotState.DONE, slot_id]
            )
        else:
            cursor.execute(_finish_sql(vendor, _SLOT_DONE_SQL), [SlotState.DONE, slot_id])
            cursor.execute(_finish_sql(vendor, _DRAFT_DELETE_SQL), [item_id, user_id])


def slot_done_and_draft_delete_orm(*, slot_id: int, item_id: int, user_id: int) -> None:
    Slot.objects.filter(pk=slot_id).update(state=SlotState.DONE, leased_until=None)
    draft_delete_orm(item_id=item_id, user_id=user_id)


def draft_delete(*, item_id: int, user_id: int) -> None:
    """The user's draft of the item is deleted; what ``draft_delete_orm`` does."""
    with connection.cursor() as cursor:
        cursor.execute(_finish_sql(connection.vendor, _DRAFT_DELETE_SQL), [item_id, user_id])


def draft_delete_orm(*, item_id: int, user_id: int) -> None:
    Draft.objects.filter(item_id=item_id, user_id=user_id).delete()
