"""Every write of the annotation app: settings, rubrics, imports (the pipeline is ``annotation.importing``),
the queue, drafts, submissions, reviews."""

from typing import Any

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation import queue, selectors

# The import and queue use cases live with their rooms; views, the API and tasks call them here as every write.
from annotation.importing import import_run as import_run
from annotation.importing import import_start as import_start
from annotation.models import (
    Annotation,
    AnnotationSettings,
    AnnotationState,
    Flag,
    Item,
    ItemState,
    PiiMode,
    PiiUncertain,
    Review,
    ReviewDecision,
    RubricVersion,
    Slot,
    SlotState,
)
from annotation.parsing import Message, content_hash
from annotation.pii import PiiPolicy, PiiPolicyError, compile_policy
from annotation.queue import draft_page_token as draft_page_token
from annotation.queue import draft_save as draft_save
from annotation.queue import item_next as item_next
from annotation.queue import item_set_priority as item_set_priority
from annotation.queue import item_skip as item_skip
from annotation.rubrics import parse_criteria, validate_scores
from core.errors import DomainError
from core.submit import Resend, submission_key

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
        "response": _clean_response(response),
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
