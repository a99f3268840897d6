"""The preferences app's hand-written SQL: the statements every comparison "next" and judgement submit runs,
each beside its ORM twin (the queryset it stands for, which other databases run where the statement is
PostgreSQL's, and which ``tests/preferences/test_submit_sql.py`` compares it with). On PostgreSQL a submit
reads what it needs with its project in one statement (``comparison_for_submit_query``) and, when the
judgement changes nothing else, is recorded in one call of the server-side function ``enclave_judgement_record``
(``judgement_record``, migration 0004); a gold item handed out is recorded with its audit event in one
statement (``gold_assign``).

Written out, they spare the annotators' hot path the Python time of compiling querysets
(``bench/preference_collection.py`` measures it). Table and column names come from the
models' ``_meta`` (``core.rawrows.Table``) and states from the enums; each statement is built once per
database vendor (``functools.cache``) and its rows become model instances through ``core.rawrows``. The
general path's writes (a judgement that changes more than itself, quality counters, adjudication) stay
querysets.
"""

import functools
import json
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Min, OuterRef, Subquery

from accounts import sql as accounts_sql
from accounts.models import GENESIS_HASH, AuditEvent, Project, User
from annotation import queue_sql
from annotation.models import Item, ItemState, Skip, SlotState
from core import rawrows
from preferences.models import COMPARISON, AnnotatorQuality, GoldAssignment, Judgement


@functools.cache
def _build(vendor: str, template: str, **extra: str) -> str:
    return template.format(
        item=rawrows.Table(Item),
        judgement=rawrows.Table(Judgement),
        skip=rawrows.Table(Skip),
        quality=rawrows.Table(AnnotatorQuality),
        open=rawrows.literal(ItemState.OPEN),
        **extra,
    )


# --- The comparison a submit names ------------------------------------------------------------------------

_COMPARISON_SQL = (
    "SELECT {columns} FROM {item} i WHERE i.{item.id} = %s AND i.{item.project} = %s AND i.{item.kind} = %s"
)


def comparison_of_project(project: Project, item_pk: int) -> Item | None:
    """The comparison ``item_pk`` of ``project``, or None; what ``comparison_of_project_orm`` reads."""
    sql = _build(connection.vendor, _COMPARISON_SQL, columns=rawrows.columns(Item, "i"))
    return rawrows.one(Item, sql, [item_pk, project.pk, COMPARISON])


def comparison_of_project_orm(project: Project, item_pk: int) -> Item | None:
    return Item.objects.filter(project=project, pk=item_pk, kind=COMPARISON).first()


# --- A gold item the user has not judged ------------------------------------------------------------------

# The bounds are min and max alone in their subquery, so each is read from one end of the item_gold index; the
# random start is a scalar subquery, evaluated once and used as the index condition of both branches (joined
# as a table instead, it was a filter, and the walk began at the first gold item).
_GOLD_SQL = """
WITH start AS (
  SELECT low + floor(random() * (high - low + 1))::bigint AS id
    FROM (SELECT min({item.id}) AS low, max({item.id}) AS high FROM {item}
           WHERE {item.project} = %(project)s AND {item.gold} IS NOT NULL AND {item.kind} = %(kind)s
             AND {item.state} = {open}) AS bounds
)
SELECT * FROM ({after}) AS after UNION ALL SELECT * FROM ({before}) AS before
LIMIT 1
"""

_GOLD_BRANCH = """
SELECT {columns} FROM {item} item
 WHERE item.{item.project} = %(project)s AND item.{item.gold} IS NOT NULL AND item.{item.kind} = %(kind)s
   AND item.{item.state} = {open} AND item.{item.id} {op} (SELECT id FROM start)
   AND (SELECT j.{judgement.id} FROM {judgement} j
         WHERE j.{judgement.item} = item.{item.id} AND j.{judgement.annotator} = %(user)s LIMIT 1) IS NULL
   AND (SELECT k.{skip.id} FROM {skip} k
         WHERE k.{skip.item} = item.{item.id} AND k.{skip.user} = %(user)s LIMIT 1) IS NULL
 ORDER BY item.{item.id} LIMIT 1
"""


def _gold_sql(vendor: str) -> str:
    columns = rawrows.columns(Item, "item")
    after = _build(vendor, _GOLD_BRANCH, columns=columns, op=">=")
    before = _build(vendor, _GOLD_BRANCH, columns=columns, op="<")
    return _build(vendor, _GOLD_SQL, after=after, before=before)


def gold_unjudged(user: User, project: Project) -> Item | None:
    """PostgreSQL: ``gold_unjudged_orm`` in one statement, from a random start the database draws."""
    return rawrows.one(Item, _gold_sql(connection.vendor), {"project": project.pk, "user": user.pk, "kind": COMPARISON})


def gold_unjudged_orm(user: User, project: Project, *, start: int | None = None) -> Item | None:
    """The first open gold comparison of the project ``user`` has neither judged nor skipped from a random id
    (``start``) on, wrapping round once; None when there is none. (A skipped one comes back once nothing else is
    left: ``preferences.gold.gold_left_over``.)"""
    golds = Item.objects.filter(project=project, kind=COMPARISON, gold__isnull=False, state=ItemState.OPEN)
    bounds = golds.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return None
    judged = Judgement.objects.filter(item=OuterRef("pk"), annotator=user).values("pk")[:1]
    skipped = Skip.objects.filter(item=OuterRef("pk"), user=user).values("pk")[:1]
    unjudged = (
        golds.alias(judged=Subquery(judged), skipped=Subquery(skipped))
        .filter(judged__isnull=True, skipped__isnull=True)
        .order_by("pk")
    )
    if start is None:
        start = random.randint(bounds["low"], bounds["high"])  # noqa: S311 - sampling, not security
    return unjudged.filter(pk__gte=start).first() or unjudged.filter(pk__lt=start).first()


# --- A gold item handed out, audited once (PostgreSQL) ------------------------------------------------------

# The assignment and, only when it is new, its audit event, in one statement (its own transaction alone). OFFSET 0
# keeps the subquery apart, so the condition on the inserted row gates the append (a one-time filter).
_GOLD_ASSIGN_SQL = """
WITH assigned AS (
  INSERT INTO {assignment} ({assignment.item}, {assignment.annotator}, {assignment.served_at})
  VALUES (%(item)s, %(user)s, %(served_at)s)
  ON CONFLICT ({assignment.item}, {assignment.annotator}) DO NOTHING RETURNING {assignment.id}
)
SELECT assigned.{assignment.id}, audit.* FROM assigned
  LEFT JOIN LATERAL (SELECT * FROM {{call}} WHERE assigned.{assignment.id} IS NOT NULL OFFSET 0) AS audit ON true
"""


@functools.cache
def _gold_assign_sql(vendor: str) -> str:
    return _GOLD_ASSIGN_SQL.format(assignment=rawrows.Table(GoldAssignment))


def gold_assign(user: User, item: Item, *, served_at: datetime, event: AuditEvent) -> bool:
    """Record that ``user`` was handed the gold ``item`` unless it was already, appending ``event`` when it is
    new; whether it was. What ``gold_assign_orm`` does, in one statement."""
    call, params = accounts_sql.audit_append_call(event, {})
    sql = _gold_assign_sql(connection.vendor).format(call=call)
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "item": item.pk, "user": user.pk, "served_at": served_at})
        row = cursor.fetchone()
    if row is None:
        return False
    event.pk, event.seq, event.prev_hash, event.hash = row[1:]
    event._state.adding = False
    return True


def gold_assign_orm(user: User, item: Item, *, served_at: datetime, event: AuditEvent) -> bool:
    """``gold_assign`` as querysets; call it inside a transaction."""
    _, created = GoldAssignment.objects.get_or_create(item=item, annotator=user, defaults={"served_at": served_at})
    if created:
        (accounts_sql.audit_append if connection.vendor == "postgresql" else accounts_sql.audit_append_orm)(event)
    return created


# --- The judgement stored under a key ---------------------------------------------------------------------

_BY_KEY_SQL = "SELECT {columns} FROM {judgement} j WHERE j.{judgement.idempotency_key} = %s"


def judgement_by_key(key: str) -> Judgement | None:
    """What ``judgement_by_key_orm`` reads: every resend asks it."""
    sql = _build(connection.vendor, _BY_KEY_SQL, columns=rawrows.columns(Judgement, "j"))
    return rawrows.one(Judgement, sql, [key])


def judgement_by_key_orm(key: str) -> Judgement | None:
    return Judgement.objects.filter(idempotency_key=key).first()


# --- The annotator's quality row and the item's results ---------------------------------------------------

_QUALITY_SQL = "SELECT {columns} FROM {quality} q WHERE q.{quality.project} = %s AND q.{quality.annotator} = %s"
_RESULTS_SQL = "SELECT {judgement.result} FROM {judgement} WHERE {judgement.item} = %s AND NOT {judgement.is_gold}"
# PostgreSQL: the quality row (if any) and the item's non-gold results in one statement, one round trip fewer.
_QUALITY_AND_RESULTS_SQL = """
SELECT {columns}, ARRAY(SELECT r.{judgement.result}::text FROM {judgement} r
                         WHERE r.{judgement.item} = %s AND NOT r.{judgement.is_gold})
  FROM (SELECT 1) AS one LEFT JOIN {quality} q ON q.{quality.project} = %s AND q.{quality.annotator} = %s
"""


def quality_row(project: Project, user: User) -> AnnotatorQuality | None:
    """What ``quality_row_orm`` reads (one row at most)."""
    sql = _build(connection.vendor, _QUALITY_SQL, columns=rawrows.columns(AnnotatorQuality, "q"))
    return rawrows.one(AnnotatorQuality, sql, [project.pk, user.pk])


def quality_row_orm(project: Project, user: User) -> AnnotatorQuality | None:
    return AnnotatorQuality.objects.filter(project=project, annotator=user).first()


def item_results(item: Item) -> list[dict[str, Any]]:
    """The results of the item's non-gold judgements, in no order; what ``item_results_orm`` reads."""
    with connection.cursor() as cursor:
        cursor.execute(_build(connection.vendor, _RESULTS_SQL), [item.pk])
        return [json.loads(r) if isinstance(r, str) else r for (r,) in cursor.fetchall()]


def item_results_orm(item: Item) -> list[dict[str, Any]]:
    return list(Judgement.objects.filter(item=item, is_gold=False).values_list("result", flat=True))


def quality_and_item_results(
    project: Project, user: User, item: Item
) -> tuple[AnnotatorQuality | None, list[dict[str, Any]]]:
    """PostgreSQL: ``quality_row`` and ``item_results`` in one statement (``quality_and_item_results_orm``)."""
    sql = _build(connection.vendor, _QUALITY_AND_RESULTS_SQL, columns=rawrows.columns(AnnotatorQuality, "q"))
    with connection.cursor() as cursor:
        cursor.execute(sql, [item.pk, project.pk, user.pk])
        row = cursor.fetchone()
    assert row is not None  # one row always: the LEFT JOIN's
    values, results = row[:-1], row[-1]
    quality = None if rawrows.is_null(AnnotatorQuality, values) else rawrows.instance(AnnotatorQuality, values)
    return quality, [json.loads(r) for r in results]


def quality_and_item_results_orm(
    project: Project, user: User, item: Item
) -> tuple[AnnotatorQuality | None, list[dict[str, Any]]]:
    return quality_row_orm(project, user), item_results_orm(item)


# --- What a submit reads with its project (PostgreSQL) ------------------------------------------------------


@dataclass(frozen=True)
class ReadBeforeSubmit:
    """What a submit read before recording: the item's non-gold results and the annotator's quality row
    (None without one). ``judgement_record`` checks, under its locks, that both are still so."""

    results: list[dict[str, Any]]
    quality: AnnotatorQuality | None


# Joined to the project's statement (``accounts.sql.project_with_perms_and_row``): the comparison, its non-gold
# results and the annotator's quality row, in the round trip that reads the project.
_FOR_SUBMIT_SQL = """
SELECT {item_columns}, ARRAY(SELECT r.{judgement.result}::text FROM {judgement} r
                              WHERE r.{judgement.item} = i.{item.id} AND NOT r.{judgement.is_gold}),
       {quality_columns}
  FROM {item} i LEFT JOIN {quality} q ON q.{quality.project} = i.{item.project} AND q.{quality.annotator} = %s
 WHERE i.{item.id} = %s AND i.{item.project} = %s AND i.{item.kind} = %s
"""


def comparison_for_submit_query(user: User, project_pk: int, item_pk: int) -> tuple[str, list[Any]]:
    """The statement (and its parameters) that reads what ``comparison_for_submit_orm`` reads, for the
    project's statement to join; ``comparison_for_submit_row`` decodes its row."""
    sql = _build(
        connection.vendor,
        _FOR_SUBMIT_SQL,
        item_columns=rawrows.columns(Item, "i"),
        quality_columns=rawrows.columns(AnnotatorQuality, "q"),
    )
    return sql, [user.pk, item_pk, project_pk, COMPARISON]


def comparison_for_submit_row(row: tuple[Any, ...]) -> tuple[Item | None, ReadBeforeSubmit]:
    item_end = rawrows.width(Item)
    item_values, results, quality_values = row[:item_end], row[item_end], row[item_end + 1 :]
    if rawrows.is_null(Item, item_values):
        return None, ReadBeforeSubmit(results=[], quality=None)
    quality = (
        None
        if rawrows.is_null(AnnotatorQuality, quality_values)
        else rawrows.instance(AnnotatorQuality, quality_values)
    )
    return rawrows.instance(Item, item_values), ReadBeforeSubmit(
        results=[json.loads(r) for r in results], quality=quality
    )


def comparison_for_submit_orm(project: Project, user: User, item_pk: int) -> tuple[Item | None, ReadBeforeSubmit]:
    item = comparison_of_project_orm(project, item_pk)
    if item is None:
        return None, ReadBeforeSubmit(results=[], quality=None)
    return item, ReadBeforeSubmit(results=item_results_orm(item), quality=quality_row_orm(project, user))


# --- A judgement that changes nothing else, recorded at once (PostgreSQL) ----------------------------------

# The judgement stored under the key (a resend) is joined by this statement, whose snapshot is older than the
# function's: one a racing submit committed while the function waited is not there, and the general path
# answers that one.
_RECORD_SQL = """
SELECT r.judgement_id, r.stored, r.event_id, r.event_seq, r.event_prev_hash, r.event_hash, {columns}
  FROM enclave_judgement_record(
    %s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::timestamptz, %s::text, %s::bigint, %s::jsonb, %s::jsonb,
    %s::jsonb, %s::text, %s::bigint, %s::text, %s::timestamptz, %s::bigint, %s::timestamptz, %s::text, %s::text,
    %s::text, %s::jsonb, %s::text, %s::text, %s::text) r
  LEFT JOIN {judgement} j ON r.stored AND j.{judgement.id} = r.judgement_id
"""


@dataclass(frozen=True)
class Recorded:
    """What ``judgement_record`` did: the new judgement's id, or (nothing written) the judgement already stored
    under the key when the user's slot was no longer leased (a resend); both None: the general path decides."""

    judgement_id: int | None
    stored: Judgement | None


JUDGEMENT_ID = "object_id"  # the hole of the audit event that the judgement's id fills


def judgement_record(
    *, item: Item, user: User, seen: ReadBeforeSubmit, fields: dict[str, Any], created_at: datetime, event: AuditEvent
) -> Recorded:
    """In one statement (its own transaction when called alone): the user's slot and the item's row locked;
    when the slot is leased to the user and the item's judgements and the quality row are what ``seen`` says,
    the judgement (not gold, not too fast) inserted, the slot done, the draft deleted and ``event`` (its object
    id the hole ``JUDGEMENT_ID``) appended; when the slot is not leased to the user, the judgement stored under
    the key, if any. Raises ``IntegrityError`` as the insert does. What ``judgement_record_orm`` does."""
    assert seen.quality is not None
    head, tail = accounts_sql.audit_body_around(event, JUDGEMENT_ID)
    params = [
        item.pk, user.pk, item.project_id, len(seen.results), seen.quality.updated_at,
        fields["mode"], fields["seed"], json.dumps(fields["displayed_order"]), json.dumps(fields["result"]),
        json.dumps(fields["displayed_result"]), fields["rationale"], fields["time_spent_ms"],
        fields["idempotency_key"], created_at,
        accounts_sql.AUDIT_LOCK_KEY, event.created_at, event.actor_label, event.action, event.object_type,
        json.dumps(event.payload, ensure_ascii=False), head, tail, GENESIS_HASH,
    ]  # fmt: skip
    sql = _build(connection.vendor, _RECORD_SQL, columns=rawrows.columns(Judgement, "j"))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return Recorded(judgement_id=None, stored=None)
    judgement_id, stored = row[0], row[1]
    if stored:
        values = row[6:]
        return Recorded(None, None if rawrows.is_null(Judgement, values) else rawrows.instance(Judgement, values))
    event.pk, event.seq, event.prev_hash, event.hash = row[2:6]
    event.object_id = str(judgement_id)
    event._state.adding = False
    return Recorded(judgement_id=int(judgement_id), stored=None)


def judgement_record_orm(
    *, item: Item, user: User, seen: ReadBeforeSubmit, fields: dict[str, Any], created_at: datetime, event: AuditEvent
) -> Recorded:
    """``judgement_record`` as querysets, in a transaction."""
    assert seen.quality is not None
    nothing = Recorded(judgement_id=None, stored=None)
    with transaction.atomic():
        slot = queue_sql.user_slot_locked_orm(user, item, lock_item=True)
        if slot is None or slot.state != SlotState.LEASED:
            return Recorded(judgement_id=None, stored=judgement_by_key_orm(fields["idempotency_key"]))
        if Judgement.objects.filter(item=item, is_gold=False).count() != len(seen.results):
            return nothing
        quality = AnnotatorQuality.objects.filter(project_id=item.project_id, annotator=user)
        if not quality.filter(updated_at=seen.quality.updated_at).exists():
            return nothing
        judgement = Judgement.objects.create(
            item=item, annotator=user, is_gold=False, gold_correct=None, too_fast=False, created_at=created_at, **fields
        )
        queue_sql.slot_done_and_draft_delete_orm(slot_id=slot.pk, item_id=item.pk, user_id=user.pk)
        event.object_id = str(judgement.pk)
        accounts_sql.audit_append_orm(event)
    return Recorded(judgement_id=judgement.pk, stored=None)
