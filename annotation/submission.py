"""Submitting an annotation (``annotation_submit``, which ``annotation.services`` offers with every other
write), in the three steps of ``core.submit``: check the item is the user's and the content complete, record
the annotation (or the next revision of a sent-back one), then the after-effects: the slot done, the draft
gone, a flag's hold or edge case, the audit event."""

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_event_record
from annotation import queue, selectors
from annotation.models import Annotation, AnnotationState, Flag, Item, ItemState, Slot, SlotState
from annotation.rubrics import parse_criteria, validate_scores
from core.errors import DomainError
from core.submit import Resend, submission_key


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

    Idempotent (``core.submit``): the same ``submit_key`` with the same content returns the stored
    annotation; with other content (a page submitted again after the Back button) it is refused as a
    conflict. A sent-back annotation is revised in place (the earlier revision is kept in ``history``).
    Flagging ``pii_leak`` puts the item on hold. Raises ``DomainError`` when the item is not the user's,
    scores are missing or off-scale, the ideal response is empty, or an annotation was already submitted.
    """
    key = submission_key(submit_key, missing="Missing submission key.")
    resend = Resend[Annotation](
        stored=lambda: _stored_for_key(item, user, key),
        same=lambda stored: _same_submission(stored, response=response, scores=scores, flags=flags, note=note),
        changed=(
            "You had already submitted this item; the changes made after submitting were not saved. "
            "Your submitted version stands (a reviewer can send it back for revision)."
        ),
        taken="You already submitted this item (in another tab or window).",
    )
    with transaction.atomic():
        slot = queue.own_slot_locked(user, item)
        existing = Annotation.objects.select_for_update().filter(item=item, annotator=user).first()
        if existing is not None and existing.submit_key == key:
            return resend.answer(existing)
        revision_of = existing if existing is not None and existing.state == AnnotationState.REJECTED else None
        if existing is not None and revision_of is None:
            raise resend.taken_error()
        fields = _checked_submission(
            item,
            leased=slot is not None and slot.state == SlotState.LEASED,
            revising=revision_of is not None,
            response=response,
            scores=scores,
            flags=flags,
            note=note,
            time_spent_ms=time_spent_ms,
            key=key,
        )
        annotation = resend.record(lambda: _annotation_write(item, user, revision_of, fields))
        _after_submit(annotation, item=item, user=user, slot=slot, fields=fields, revising=revision_of is not None)
    return annotation


def _stored_for_key(item: Item, user: User, key: str) -> Annotation | None:
    stored = Annotation.objects.filter(item=item, annotator=user).first()
    return stored if stored is not None and stored.submit_key == key else None


def _checked_submission(
    item: Item,
    *,
    leased: bool,
    revising: bool,
    response: str,
    scores: dict[str, Any],
    flags: list[str],
    note: str,
    time_spent_ms: int,
    key: str,
) -> dict[str, Any]:
    """The annotation's fields, once the item is the user's to submit and the content is complete."""
    if not revising and not leased:
        raise DomainError(
            "This item is no longer assigned to you (the lease ran out and someone else took it). Your draft is kept."
        )
    rubric = selectors.current_rubric(item.project)
    if rubric is None:
        raise DomainError("This project has no rubric yet; a data lead must write one first.")
    clean_scores = validate_scores(parse_criteria(rubric.criteria), scores)
    if not response.strip():
        raise DomainError("Write the ideal response before submitting.", field="response")
    return {
        "rubric_version": rubric,
        "original_response": item.response,
        "response": clean_response(response),
        "scores": clean_scores,
        "flags": _clean_flags(flags),
        "note": note.strip(),
        "time_spent_ms": queue.time_on_task(time_spent_ms),
        "state": AnnotationState.SUBMITTED,
        "submit_key": key,
        "submitted_at": timezone.now(),
    }


def _annotation_write(item: Item, user: User, revision_of: Annotation | None, fields: dict[str, Any]) -> Annotation:
    """A new annotation, or the next revision of a sent-back one (the earlier one kept in ``history``)."""
    with transaction.atomic():
        if revision_of is None:
            return Annotation.objects.create(item=item, annotator=user, **fields)
        revision_of.history = [*revision_of.history, _snapshot(revision_of)]
        revision_of.revision = F("revision") + 1
        for name, value in fields.items():
            setattr(revision_of, name, value)
        revision_of.save()
        revision_of.refresh_from_db()
        return revision_of


def _after_submit(
    annotation: Annotation, *, item: Item, user: User, slot: Slot | None, fields: dict[str, Any], revising: bool
) -> None:
    """The slot is done and the draft gone; a flag holds the item or marks an edge case; audited."""
    queue.slot_finish(user=user, item=item, slot=slot)
    if Flag.PII_LEAK in fields["flags"]:
        _hold(item, user, "An annotator flagged PII that slipped through scrubbing.")
    if Flag.EDGE_CASE in fields["flags"] and not item.edge_case:
        Item.objects.filter(pk=item.pk).update(edge_case=True)
    audit_event_record(
        actor=user,
        action="annotation.revise" if revising else "annotation.submit",
        target=annotation,
        project=item.project,
        payload={
            "item": item.pk,
            "rubric_version": fields["rubric_version"].version,
            "scores": fields["scores"],
            "flags": fields["flags"],
            "revision": annotation.revision,
            "time_spent_ms": annotation.time_spent_ms,
        },
    )


def _same_submission(stored: Annotation, *, response: str, scores: dict[str, Any], flags: list[str], note: str) -> bool:
    """Whether a resent submission carries what was stored (a double click, a retry) rather than changes."""
    try:
        clean_scores = validate_scores(parse_criteria(stored.rubric_version.criteria), scores)
    except DomainError:
        return False
    return (
        clean_response(response) == stored.response
        and clean_scores == stored.scores
        and _clean_flags(flags) == list(stored.flags)
        and note.strip() == stored.note
    )


def clean_response(response: str) -> str:
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
