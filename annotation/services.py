"""Every write of the annotation app: settings, rubrics, imports (the pipeline is ``annotation.importing``),
the queue, drafts, submissions, reviews."""

import functools
import json
import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, OuterRef, Subquery
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation import selectors

# The import use cases live with their pipeline; views, the API and tasks call them here as every write.
from annotation.importing import import_run as import_run
from annotation.importing import import_start as import_start
from annotation.models import (
    Annotation,
    AnnotationSettings,
    AnnotationState,
    Draft,
    Flag,
    Item,
    ItemState,
    PiiMode,
    PiiUncertain,
    Review,
    ReviewDecision,
    RubricVersion,
    Skip,
    Slot,
    SlotState,
)
from annotation.parsing import Message, content_hash
from annotation.pii import PiiPolicy, PiiPolicyError, compile_policy
from annotation.rubrics import parse_criteria, validate_scores
from core import rawrows
from core.errors import DomainError
from core.http import parse_id

_INSERT_CHUNK = 1000
_DRAFT_LIMIT = 1_000_000  # characters of JSON; a draft is one person's work on one item


# --- Settings and rubrics --------------------------------------------------------------------------------


def annotation_settings_update(
    *,
    actor: User,
    project: Project,
    annotators_per_item: int,
    lease_minutes: int,
    pii_mode: str,
    pii_patterns: list[list[str]],
    pii_terms: list[str],
    pii_uncertain: str | None = None,
    pii_phone_region: str | None = None,
) -> AnnotationSettings:
    """Change the workflow settings. Raising ``annotators_per_item`` adds slots to open items; lowering
    it removes free slots. ``pii_uncertain`` ("scrub" or "keep") says what imports do with values the
    scrubber is unsure of, ``pii_phone_region`` whose national phone formats it reads; None leaves either
    as it is. Raises ``DomainError`` for values out of range, a PII pattern that does not compile, an
    unknown choice for uncertain values or an unknown phone region."""
    if not 1 <= annotators_per_item <= 10:
        raise DomainError("Between 1 and 10 annotators per item.", field="annotators_per_item")
    if not 5 <= lease_minutes <= 24 * 60:
        raise DomainError("A lease lasts between 5 minutes and 24 hours.", field="lease_minutes")
    if pii_mode not in PiiMode.values:
        raise DomainError("Unknown PII policy.", field="pii_mode")
    for number, pattern in enumerate(pii_patterns, start=1):
        if len(pattern) != 2 or not str(pattern[0]).isupper() or not str(pattern[1]).strip():
            raise DomainError(f"Pattern {number}: give an upper-case TYPE and a regex.", field="pii_patterns")
    if pii_uncertain is not None and pii_uncertain not in PiiUncertain.values:
        raise DomainError("Choose whether uncertain values are scrubbed or kept.", field="pii_uncertain")
    if pii_phone_region is not None:
        pii_phone_region = pii_phone_region.strip().upper()
        try:
            compile_policy(PiiPolicy(mode="replace", default_phone_region=pii_phone_region))
        except PiiPolicyError as exc:
            raise DomainError(str(exc), field="pii_phone_region") from exc
    try:
        compile_policy(PiiPolicy(mode="replace", extra_patterns=tuple((t, p) for t, p in pii_patterns)))
    except PiiPolicyError as exc:
        raise DomainError(str(exc), field="pii_patterns") from exc
    with transaction.atomic():
        current, _ = AnnotationSettings.objects.select_for_update().get_or_create(project=project)
        before = {
            "k": current.annotators_per_item,
            "lease": current.lease_minutes,
            "pii_mode": current.pii_mode,
            "pii_uncertain": current.pii_uncertain,
            "pii_phone_region": current.pii_phone_region,
        }
        current.pii_uncertain = pii_uncertain if pii_uncertain is not None else current.pii_uncertain
        current.pii_phone_region = pii_phone_region if pii_phone_region is not None else current.pii_phone_region
        current.annotators_per_item = annotators_per_item
        current.lease_minutes = lease_minutes
        current.pii_mode = pii_mode
        current.pii_patterns = [list(p) for p in pii_patterns]
        current.pii_terms = [t for t in pii_terms if t.strip()]
        current.updated_at = timezone.now()
        current.save()
        if "annotation" in project._state.fields_cache:  # read with the project: keep what it holds current
            project._state.fields_cache["annotation"] = current
        if before["k"] != annotators_per_item:
            _resize_slots(project, annotators_per_item)
        audit_event_record(
            actor=actor,
            action="annotation.settings_update",
            target=current,
            project=project,
            payload={
                "before": before,
                "after": {
                    "k": annotators_per_item,
                    "lease": lease_minutes,
                    "pii_mode": pii_mode,
                    "pii_uncertain": current.pii_uncertain,
                    "pii_phone_region": current.pii_phone_region,
                },
                "pii_patterns": len(current.pii_patterns),
                "pii_terms": len(current.pii_terms),
            },
        )
    return current


def _resize_slots(project: Project, k: int) -> None:
    """Give every item ``k`` slots: add the missing ones, drop free ones beyond ``k`` (slots already
    leased or done stay, so work in progress is never taken away)."""
    Slot.objects.filter(project=project, state=SlotState.FREE, index__gte=k).delete()
    short = (
        Item.objects.filter(project=project, gold__isnull=True)
        .annotate(slot_count=Count("slots"))
        .filter(slot_count__lt=k)
    )
    new_slots: list[Slot] = []
    for item_id, priority, slot_count in short.values_list("id", "priority", "slot_count").iterator(chunk_size=2000):
        new_slots.extend(
            Slot(item_id=item_id, project=project, index=i, priority=priority) for i in range(slot_count, k)
        )
        if len(new_slots) >= _INSERT_CHUNK:
            Slot.objects.bulk_create(new_slots)
            new_slots = []
    Slot.objects.bulk_create(new_slots)


def rubric_save(*, actor: User, project: Project, guidelines: str, criteria: list[dict[str, Any]]) -> RubricVersion:
    """Save the project's guidelines and criteria. A version that annotations already use is never
    changed: a new version is made. Raises ``DomainError`` for invalid criteria."""
    parsed = parse_criteria(criteria)
    if not parsed:
        raise DomainError("A rubric needs at least one criterion.", field="criteria")
    stored = [c.as_json() for c in parsed]
    with transaction.atomic():
        current = RubricVersion.objects.select_for_update().filter(project=project).order_by("-version").first()
        if current is not None and not current.annotations.exists():
            current.guidelines = guidelines
            current.criteria = stored
            current.save(update_fields=["guidelines", "criteria"])
            version, made_new = current, False
        else:
            version = RubricVersion.objects.create(
                project=project,
                version=(current.version + 1) if current else 1,
                guidelines=guidelines,
                criteria=stored,
                created_by=actor,
            )
            made_new = True
        audit_event_record(
            actor=actor,
            action="rubric.create_version" if made_new else "rubric.edit",
            target=version,
            project=project,
            payload={"version": version.version, "criteria": [c["key"] for c in stored]},
        )
    return version


# --- The queue -------------------------------------------------------------------------------------------


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


def annotation_submit(
    *,
    user: User,
    item: Item,
    response: str,
    scores: dict[str, Any],
    flags: list[str],
    note: str,
    time_spent_ms: int,
    submit_key: str,
) -> Annotation:
    """Submit the user's annotation of ``item`` under the project's current rubric.

    Idempotent: the same ``submit_key`` with the same content returns the stored annotation; with other
    content (a page submitted again after the Back button) it is refused as a conflict, so nobody is told
    that changes were saved when they were not. A sent-back annotation is
    revised in place (the earlier revision is kept in ``history``). Flagging ``pii_leak`` puts the item
    on hold. Raises ``DomainError`` when the item is not the user's, scores are missing or off-scale, the
    ideal response is empty, or an annotation was already submitted.
    """
    submit_key = submit_key.strip()[:64]
    if not submit_key:
        raise DomainError("Missing submission key.")
    with transaction.atomic():
        slot = own_slot_locked(user, item)
        existing = Annotation.objects.select_for_update().filter(item=item, annotator=user).first()
        if existing is not None and existing.submit_key == submit_key:
            if _same_submission(existing, response=response, scores=scores, flags=flags, note=note):
                return existing
            raise _changed_after_submit()
        revising = existing is not None and existing.state == AnnotationState.REJECTED
        if existing is not None and not revising:
            raise DomainError("You already submitted this item (in another tab or window).", status=409)
        if not revising and (slot is None or slot.state != SlotState.LEASED):
            raise DomainError(
                "This item is no longer assigned to you (the lease ran out and someone else took it). "
                "Your draft is kept."
            )
        rubric = selectors.current_rubric(item.project)
        if rubric is None:
            raise DomainError("This project has no rubric yet; a data lead must write one first.")
        clean_scores = validate_scores(parse_criteria(rubric.criteria), scores)
        if not response.strip():
            raise DomainError("Write the ideal response before submitting.", field="response")
        clean_flags = _clean_flags(flags)
        fields: dict[str, Any] = {
            "rubric_version": rubric,
            "original_response": item.response,
            "response": _clean_response(response),
            "scores": clean_scores,
            "flags": clean_flags,
            "note": note.strip(),
            "time_spent_ms": time_on_task(time_spent_ms),
            "state": AnnotationState.SUBMITTED,
            "submit_key": submit_key,
            "submitted_at": timezone.now(),
        }
        try:
            with transaction.atomic():
                if revising and existing is not None:
                    existing.history = [*existing.history, _snapshot(existing)]
                    existing.revision = F("revision") + 1
                    for name, value in fields.items():
                        setattr(existing, name, value)
                    existing.save()
                    existing.refresh_from_db()
                    annotation = existing
                else:
                    annotation = Annotation.objects.create(item=item, annotator=user, **fields)
        except IntegrityError:
            # Two tabs raced; the other one stored it first.
            stored = Annotation.objects.get(item=item, annotator=user)
            if stored.submit_key == submit_key:
                if _same_submission(stored, response=response, scores=scores, flags=flags, note=note):
                    return stored
                raise _changed_after_submit() from None
            raise DomainError("You already submitted this item (in another tab or window).", status=409) from None
        slot_finish(user=user, item=item, slot=slot)
        if Flag.PII_LEAK in clean_flags:
            _hold(item, user, "An annotator flagged PII that slipped through scrubbing.")
        if Flag.EDGE_CASE in clean_flags and not item.edge_case:
            Item.objects.filter(pk=item.pk).update(edge_case=True)
        audit_event_record(
            actor=user,
            action="annotation.revise" if revising else "annotation.submit",
            target=annotation,
            project=item.project,
            payload={
                "item": item.pk,
                "rubric_version": rubric.version,
                "scores": clean_scores,
                "flags": clean_flags,
                "revision": annotation.revision,
                "time_spent_ms": annotation.time_spent_ms,
            },
        )
    return annotation


def _changed_after_submit() -> DomainError:
    return DomainError(
        "You had already submitted this item; the changes made after submitting were not saved. "
        "Your submitted version stands (a reviewer can send it back for revision).",
        status=409,
    )


def _same_submission(stored: Annotation, *, response: str, scores: dict[str, Any], flags: list[str], note: str) -> bool:
    """Whether a resent submission carries what was stored (a double click, a retry) rather than changes."""
    try:
        clean_scores = validate_scores(parse_criteria(stored.rubric_version.criteria), scores)
    except DomainError:
        return False
    return (
        _clean_response(response) == stored.response
        and clean_scores == stored.scores
        and _clean_flags(flags) == list(stored.flags)
        and note.strip() == stored.note
    )


def _clean_response(response: str) -> str:
    return response.replace("\r\n", "\n")  # a browser's textarea sends CRLF


def _clean_flags(flags: list[str]) -> list[str]:
    return sorted({f for f in flags if f in Flag.values})


def _snapshot(annotation: Annotation) -> dict[str, Any]:
    return {
        "revision": annotation.revision,
        "response": annotation.response,
        "scores": annotation.scores,
        "flags": annotation.flags,
        "note": annotation.note,
        "submitted_at": annotation.submitted_at.isoformat(),
    }


def _hold(item: Item, actor: User, reason: str) -> None:
    Item.objects.filter(pk=item.pk).update(state=ItemState.ON_HOLD, hold_reason=reason)
    audit_event_record(actor=actor, action="item.hold", target=item, project=item.project, payload={"reason": reason})


def _redacted_content_hash(item: Item) -> str:
    """The content hash of ``item``'s text as it now is. If another item of the project already has that
    text, the hash is taken over the text and this item's id, so both keep a unique hash of scrubbed text."""
    messages = [Message(role=m["role"], content=m["content"]) for m in item.messages]
    candidates = [c["content"] for c in item.candidates]
    digest = content_hash(messages, item.response, candidates)
    if Item.objects.filter(project_id=item.project_id, content_hash=digest).exclude(pk=item.pk).exists():
        tagged = [*messages, Message(role="enclave-item", content=str(item.pk))]
        digest = content_hash(tagged, item.response, candidates)
    return digest


def item_release_hold(*, actor: User, item: Item, redact: str = "") -> Item:
    """Put a held item back in the queue, after replacing every occurrence of ``redact`` (the PII that
    slipped through) with ``[REDACTED]`` in its conversation, response and candidates. The item's content
    hash is computed again from the redacted text, so no hash of the leaked value stays behind."""
    with transaction.atomic():
        item = Item.objects.select_for_update().get(pk=item.pk)
        if item.state != ItemState.ON_HOLD:
            raise DomainError("This item is not on hold.")
        replaced = 0
        if redact.strip():
            needle = redact.strip()
            for message in item.messages:
                replaced += message["content"].count(needle)
                message["content"] = message["content"].replace(needle, "[REDACTED]")
            if item.response:
                replaced += item.response.count(needle)
                item.response = item.response.replace(needle, "[REDACTED]")
            for candidate in item.candidates:
                replaced += candidate["content"].count(needle)
                candidate["content"] = candidate["content"].replace(needle, "[REDACTED]")
            item.content_hash = _redacted_content_hash(item)
            for annotation in Annotation.objects.filter(item=item, response__contains=needle):
                annotation.response = annotation.response.replace(needle, "[REDACTED]")
                annotation.save(update_fields=["response"])
        item.state = ItemState.OPEN
        item.hold_reason = ""
        item.save(update_fields=["messages", "response", "candidates", "content_hash", "state", "hold_reason"])
        audit_event_record(
            actor=actor, action="item.release", target=item, project=item.project, payload={"redacted": replaced}
        )
    return item


# --- Review ----------------------------------------------------------------------------------------------


def annotation_review(
    *,
    reviewer: User,
    annotation: Annotation,
    decision: str,
    comment: str = "",
    edited_response: str | None = None,
    edited_scores: dict[str, Any] | None = None,
) -> Review:
    """Approve, send back (with a comment) or edit-and-approve a submitted annotation.

    Raises ``DomainError`` when reviewers review their own work, the annotation is not waiting for review,
    a send-back has no comment, or an edit leaves the response empty or scores off-scale.
    """
    if decision not in ReviewDecision.values:
        raise DomainError("Choose approve, send back, or edit and approve.", field="decision")
    with transaction.atomic():
        annotation = (
            Annotation.objects.select_for_update().select_related("item", "rubric_version").get(pk=annotation.pk)
        )
        if annotation.annotator_id == reviewer.pk:
            raise DomainError("Nobody reviews their own work: another reviewer must take this one.")
        if annotation.state != AnnotationState.SUBMITTED:
            raise DomainError("This annotation is not waiting for review (someone else may have reviewed it).")
        clean_scores = None
        if decision == ReviewDecision.REJECT and not comment.strip():
            raise DomainError("Say what to change when sending an annotation back.", field="comment")
        if decision == ReviewDecision.EDIT_APPROVE:
            if not (edited_response or "").strip():
                raise DomainError("The edited response is empty.", field="edited_response")
            clean_scores = validate_scores(
                parse_criteria(annotation.rubric_version.criteria), edited_scores or annotation.scores
            )
            unchanged = _clean_response(edited_response or "") == annotation.response
            if unchanged and clean_scores == annotation.scores:
                raise DomainError("Nothing was edited: use Approve, or change the response or a score first.")
        review = Review.objects.create(
            annotation=annotation,
            reviewer=reviewer,
            decision=decision,
            comment=comment.strip(),
            edited_response=edited_response if decision == ReviewDecision.EDIT_APPROVE else None,
            edited_scores=clean_scores,
        )
        annotation.state = AnnotationState.REJECTED if decision == ReviewDecision.REJECT else AnnotationState.APPROVED
        annotation.reviewed_at = timezone.now()
        annotation.save(update_fields=["state", "reviewed_at"])
        audit_event_record(
            actor=reviewer,
            action=f"review.{decision}",
            target=annotation,
            project=annotation.item.project,
            payload={
                "annotator": annotation.annotator_id,
                "comment": review.comment,
                "edited": clean_scores is not None,
            },
        )
    return review
