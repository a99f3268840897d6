"""Every write of the annotation app: settings, rubrics, held items, reviews; and, from their own rooms,
imports (``annotation.importing``), the queue and drafts (``annotation.queue``) and submissions
(``annotation.submission``)."""

from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record

# The import, queue and submission use cases live with their rooms; views, the API and tasks call them here
# as every write.
from annotation.formats import import_format_check as import_format_check
from annotation.importing import import_run as import_run
from annotation.importing import import_start as import_start
from annotation.models import (
    Annotation,
    AnnotationSettings,
    AnnotationState,
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
from annotation.peer_mapping import import_cancel as import_cancel
from annotation.peer_mapping import import_mapping_confirm as import_mapping_confirm
from annotation.pii import PiiPolicy, PiiPolicyError, compile_policy
from annotation.queue import draft_page_token as draft_page_token
from annotation.queue import draft_save as draft_save
from annotation.queue import item_next as item_next
from annotation.queue import item_set_priority as item_set_priority
from annotation.queue import item_skip as item_skip
from annotation.rubrics import parse_criteria, validate_scores
from annotation.submission import annotation_submit as annotation_submit
from annotation.submission import clean_response
from core.errors import DomainError

_INSERT_CHUNK = 1000


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


# --- Held items and review -------------------------------------------------------------------------------


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
            Annotation.objects.select_for_update(of=("self",))
            .select_related("item", "rubric_version")
            .get(pk=annotation.pk)
        )
        if annotation.annotator_id == reviewer.pk:
            raise DomainError("Nobody reviews their own work: another reviewer must take this one.", status=409)
        if annotation.state != AnnotationState.SUBMITTED:
            raise DomainError(
                "This annotation is not waiting for review (someone else may have reviewed it).", status=409
            )
        clean_scores = None
        if decision == ReviewDecision.REJECT and not comment.strip():
            raise DomainError("Say what to change when sending an annotation back.", field="comment")
        if decision == ReviewDecision.EDIT_APPROVE:
            if not (edited_response or "").strip():
                raise DomainError("The edited response is empty.", field="edited_response")
            clean_scores = validate_scores(
                parse_criteria(annotation.rubric_version.criteria), edited_scores or annotation.scores
            )
            unchanged = clean_response(edited_response or "") == annotation.response
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
