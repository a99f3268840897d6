"""Recording a judgement: ``judgement_submit`` checks, records (idempotently, on PostgreSQL a plain judgement in
one server-side call) and runs the after-effects (quality, gold, adjudication, agreement). The twin of
``annotation.submission``."""

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_build, audit_event_record
from accounts.sql import audit_hole
from annotation import queue
from annotation.models import Item, SlotState
from annotation.selectors import current_rubric
from core.errors import DomainError
from core.submit import Resend, submission_key
from preferences import submit_sql
from preferences.adjudication import adjudication_create, disputed_agreement
from preferences.agreement_runs import agreement_schedule
from preferences.gold import gold_assigned_locked
from preferences.models import (
    COMPARISON,
    Adjudication,
    Judgement,
    JudgementMode,
    PreferenceSettings,
)
from preferences.quality import project_median_ms, quality_and_item_results, quality_update, should_flag
from preferences.results import display_order, gold_matches, map_result
from preferences.selectors import judgement_mode, preference_settings


def _stored_for_key(key: str, user: User, item: Item) -> Judgement | None:
    """The judgement already stored under ``key``, if any. Raises ``DomainError`` when the key belongs to
    another user's or another item's judgement."""
    stored = submit_sql.judgement_by_key(key)
    if stored is not None and (stored.annotator_id != user.pk or stored.item_id != item.pk):
        raise DomainError(KEY_USED_ELSEWHERE)
    return stored


KEY_USED_ELSEWHERE = "This idempotency key was already used for another judgement."


def judgement_submit(
    *,
    user: User,
    item: Item,
    shown: dict[str, Any],
    rationale: str,
    time_spent_ms: int,
    idempotency_key: str,
    seen: submit_sql.ReadBeforeSubmit | None = None,
) -> Judgement:
    """Store the user's judgement of ``item``.

    ``shown`` is the choice in display positions (letters A, B, …); it is mapped to candidate ids with the
    order this user was shown. Idempotent (``core.submit``): the same ``idempotency_key`` with the same
    choice and rationale returns the stored judgement; with another (a page submitted again after the Back
    button) it is refused as a conflict (409). Gold items update the annotator's gold accuracy; very fast
    judgements are flagged. When all ``k`` judgements of an item disagree beyond the project threshold, the
    item goes to adjudication. Raises ``DomainError`` for a malformed choice, a missing rationale, an item
    not assigned to the user, or a second judgement of the same item.

    ``seen`` is what the caller read with the item (``preferences.permissions.get_comparison_for_submit``): with
    it, on PostgreSQL, a judgement that changes nothing else (no gold, no quality count or flag, no
    adjudication) is recorded in one statement (``submit_sql.judgement_record``).
    """
    key = submission_key(idempotency_key, missing="Missing idempotency key.")
    if item.kind != COMPARISON:
        raise DomainError("This item is not a comparison.")
    config = preference_settings(item.project)
    mode = judgement_mode(item.project, item)
    seed, order = display_order(user, item)
    try:
        if config.rationale_required and not rationale.strip():
            raise DomainError("Say why: this project asks for a rationale.", field="rationale")
        criteria = _criteria_keys(item.project) if mode == JudgementMode.PER_CRITERION else []
        result = map_result(mode, shown, order, criteria)
    except DomainError:
        earlier = _stored_for_key(key, user, item)
        if earlier is not None:
            return _resend(key, user, item, shown=shown, result=None, rationale=rationale).answer(earlier)
        raise
    resend = _resend(key, user, item, shown=shown, result=result, rationale=rationale)
    fields = {
        "mode": mode,
        "seed": seed,
        "displayed_order": order,
        "result": result,
        "displayed_result": shown,
        "rationale": rationale.strip(),
        "time_spent_ms": queue.time_on_task(time_spent_ms),
        "idempotency_key": key,
    }
    median = project_median_ms(item.project)
    too_fast = bool(median and time_spent_ms < config.fast_fraction * median)
    if seen is not None and _changes_nothing_else(item, user, seen, result, config=config, too_fast=too_fast):
        judgement = resend.record(lambda: _judgement_record_at_once(item, user, resend, seen, fields))
        if judgement is not None:
            return judgement
    return resend.record(lambda: _judgement_record(item, user, resend, fields, config=config, too_fast=too_fast))


def _changes_nothing_else(
    item: Item,
    user: User,
    seen: submit_sql.ReadBeforeSubmit,
    result: dict[str, Any],
    *,
    config: PreferenceSettings,
    too_fast: bool,
) -> bool:
    """Whether, if the item's judgements and the user's quality row are still what ``seen`` holds, this
    judgement changes nothing but itself: not gold, not too fast, the quality row there and its flag staying,
    no adjudication to open (what ``_after_judgement`` would then do besides the audit event)."""
    if connection.vendor != "postgresql" or item.gold is not None or too_fast or seen.quality is None:
        return False
    if seen.quality.flagged != should_flag(seen.quality, config):
        return False
    disputed = disputed_agreement(item, [*seen.results, result])
    return disputed is None or disputed[0] >= config.adjudication_threshold


def _judgement_record_at_once(
    item: Item, user: User, resend: Resend[Judgement], seen: submit_sql.ReadBeforeSubmit, fields: dict[str, Any]
) -> Judgement | None:
    """The judgement, its slot's end and its audit event in one statement, when what ``seen`` holds still
    holds under the locks; a resend's answer when the slot was judged already and a judgement is stored under
    the key (as ``_judgement_record`` answers it); None (nothing written) otherwise. Alone it is its own
    transaction; inside a caller's, a savepoint lets ``Resend.record`` answer a refused insert."""
    created_at = timezone.now()
    event = audit_event_build(
        actor=user,
        action="judgement.submit",
        object_type=Judgement._meta.label_lower,
        object_id=audit_hole(submit_sql.JUDGEMENT_ID),
        project=item.project,
        payload={"item": item.pk, "result": fields["result"], "gold": False, "too_fast": False},
    )
    with queue.own_transaction():
        recorded = submit_sql.judgement_record(
            item=item, user=user, seen=seen, fields=fields, created_at=created_at, event=event
        )
    if recorded.stored is not None:
        if recorded.stored.annotator_id != user.pk or recorded.stored.item_id != item.pk:
            raise DomainError(KEY_USED_ELSEWHERE)
        return resend.answer(recorded.stored)
    if recorded.judgement_id is None:
        return None
    judgement = Judgement(
        pk=recorded.judgement_id,
        item=item,
        annotator=user,
        is_gold=False,
        gold_correct=None,
        too_fast=False,
        created_at=created_at,
        **fields,
    )
    judgement._state.adding = False
    judgement._state.db = connection.alias
    agreement_schedule(item.project)
    return judgement


def _resend(
    key: str, user: User, item: Item, *, shown: dict[str, Any], result: dict[str, Any] | None, rationale: str
) -> Resend[Judgement]:
    """A resent judgement is the stored one when it carries the same choice (as shown, or as mapped to the
    candidates) and the same rationale; otherwise the changes were not saved and it is a conflict."""

    def same(stored: Judgement) -> bool:
        same_choice = stored.displayed_result == shown or (result is not None and stored.result == result)
        return same_choice and stored.rationale == rationale.strip()

    return Resend[Judgement](
        stored=lambda: _stored_for_key(key, user, item),
        same=same,
        changed=(
            "You had already judged this comparison; the changes made after submitting were not saved. "
            "Your first judgement stands."
        ),
        taken="You already judged this comparison (in another tab or window).",
    )


def _judgement_record(
    item: Item,
    user: User,
    resend: Resend[Judgement],
    fields: dict[str, Any],
    *,
    config: PreferenceSettings,
    too_fast: bool,
) -> Judgement:
    """In one transaction: the comparison is the user's to judge (else a resend's answer or a refusal), the
    judgement is stored, and its after-effects follow."""
    is_gold = item.gold is not None
    with transaction.atomic():
        slot = None
        if is_gold:
            # Gold items have no slots: everyone judges each once, if it was handed to them; a resend finds
            # what was stored. One never handed out answers as any comparison not assigned.
            earlier = resend.stored()
            if earlier is not None:
                return resend.answer(earlier)
            assigned = gold_assigned_locked(user, item)
        else:
            # The item's row too: of two last judgements of the item at once, the later one must see both to
            # decide on adjudication below.
            slot = queue.own_slot_locked(user, item, lock_item=True)
            assigned = slot is not None and slot.state == SlotState.LEASED
            if not assigned:
                # Judged already: a resend, or a second tab with the same key that waited on the slot lock
                # until the first committed. Answer with what the first one stored.
                earlier = resend.stored()
                if earlier is not None:
                    return resend.answer(earlier)
        if not assigned:
            if Judgement.objects.filter(item=item, annotator=user).exists():
                raise resend.taken_error()
            raise DomainError("This comparison is no longer assigned to you (the lease ran out).")
        # Assigned to this user and locked: a second judgement of theirs for this item, or a key already used
        # elsewhere, fails the insert on its unique index (``Resend.record`` answers it).
        judgement = Judgement.objects.create(
            item=item,
            annotator=user,
            is_gold=is_gold,
            gold_correct=gold_matches(fields["result"], item.gold) if is_gold else None,
            too_fast=too_fast,
            **fields,
        )
        queue.slot_finish(user=user, item=item, slot=slot)
        _after_judgement(judgement, item=item, user=user, config=config)
    return judgement


def _after_judgement(judgement: Judgement, *, item: Item, user: User, config: PreferenceSettings) -> None:
    """The annotator's quality, adjudication when the item's judgements disagree, the agreement figures
    scheduled, and the audit events (last: the chain lock is held from the first append to the commit)."""
    if judgement.is_gold:
        quality_update(item.project, user, judgement, config)
        disputed = None
    else:
        quality, results = quality_and_item_results(item.project, user, item, read_quality=not judgement.too_fast)
        quality_update(item.project, user, judgement, config, read=quality)
        disputed = disputed_agreement(item, results)
    opened: tuple[Adjudication, dict[str, Any]] | None = None
    if disputed is not None and disputed[0] < config.adjudication_threshold:
        adjudication = adjudication_create(item, agreement=disputed[0])
        if adjudication is not None:
            opened = (adjudication, {"item": item.pk, "agreement": disputed[0], "judgements": disputed[1]})
    agreement_schedule(item.project)  # a cache round trip after the commit, none before
    audit_event_record(
        actor=user,
        action="judgement.submit",
        target=judgement,
        project=item.project,
        payload={
            "item": item.pk,
            "result": judgement.result,
            "gold": judgement.is_gold,
            "too_fast": judgement.too_fast,
        },
    )
    if opened is not None:
        audit_event_record(
            actor=None, action="adjudication.open", target=opened[0], project=item.project, payload=opened[1]
        )


def _criteria_keys(project: Project) -> list[str]:
    rubric = current_rubric(project)
    return [c["key"] for c in rubric.criteria] if rubric else []
