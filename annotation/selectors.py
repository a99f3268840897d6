"""Reads of the annotation app."""

from typing import Any

from django.core.cache import cache as shared_cache
from django.db.models import Count, Q, QuerySet, Sum

from accounts.models import Project, User
from annotation.models import (
    Annotation,
    AnnotationSettings,
    AnnotationState,
    Draft,
    ImportBatch,
    Item,
    ItemState,
    RubricVersion,
    Slot,
    SlotState,
)
from annotation.parsing import ImportFormat
from annotation.peers.records import PeerFormat
from core.dispatch import BrokerUnreachable, reach_broker

WORK_KINDS = frozenset({"sft", "comparison"})
PEER_FORMATS = frozenset(f.value for f in PeerFormat)


def work_kinds(project: Project) -> frozenset[str]:
    """The kinds of work a project holds, from its imports (a handful of rows, not its items): "sft"
    (conversations to annotate) and/or "comparison". A project that imported nothing yet may get either."""
    batches = ImportBatch.objects.filter(project=project, purpose="annotation", imported_count__gt=0)
    formats = set(batches.values_list("fmt", flat=True).distinct())
    kinds = {"comparison" if fmt == ImportFormat.COMPARISON_JSONL else "sft" for fmt in formats - PEER_FORMATS}
    if formats & PEER_FORMATS:  # another tool's file may hold either: what it became says
        peer_items = Item.objects.filter(batch__in=batches.filter(fmt__in=PEER_FORMATS))
        kinds |= {kind for kind in ("comparison", "sft") if peer_items.filter(kind=kind).exists()}
    return frozenset(kinds) or WORK_KINDS


SFT_FORMATS = (ImportFormat.CHAT_JSONL, ImportFormat.PROMPT_RESPONSE_JSONL, ImportFormat.CSV)
# Other tools' files: Label Studio's and Argilla's hold comparisons or answers; OpenAssistant's, comparisons.
PEER_COMPARISON_FORMATS = (PeerFormat.LABEL_STUDIO, PeerFormat.ARGILLA, PeerFormat.OPENASSISTANT)
PEER_SFT_FORMATS = (PeerFormat.LABEL_STUDIO, PeerFormat.ARGILLA)


def import_formats(project: Project) -> list[ImportFormat | PeerFormat]:
    """The import formats that fit the project's work, the usual one first: comparisons only in a project of
    comparisons, conversations (chat, prompt/response, CSV) only in an SFT project; all of them while it has
    imported nothing yet (or, from before this rule, already holds both)."""
    kinds = work_kinds(project)
    if kinds == {"comparison"}:
        return [ImportFormat.COMPARISON_JSONL, *PEER_COMPARISON_FORMATS]
    if kinds == {"sft"}:
        return [*SFT_FORMATS, *PEER_SFT_FORMATS]
    return [*SFT_FORMATS, ImportFormat.COMPARISON_JSONL, *PEER_COMPARISON_FORMATS]


def default_release_kind(project: Project) -> str:
    """What a new release (and a training job with no release yet) starts as: "sft" in a project that holds
    only conversations to annotate, else "preference"."""
    return "sft" if work_kinds(project) == {"sft"} else "preference"


def annotation_settings(project: Project) -> AnnotationSettings:
    """The project's settings, or the defaults (unsaved) when nobody changed them yet. Read with the project
    when it was fetched with them (``get_project_for_user(…, with_settings=("annotation",))``)."""
    cache = project._state.fields_cache
    if "annotation" in cache:
        return cache["annotation"] or AnnotationSettings(project=project)
    found = AnnotationSettings.objects.filter(project=project).first()
    return found or AnnotationSettings(project=project)


def current_rubric(project: Project) -> RubricVersion | None:
    return RubricVersion.objects.filter(project=project).order_by("-version").first()


def import_batches(project: Project) -> QuerySet[ImportBatch]:
    return ImportBatch.objects.filter(project=project).select_related("uploaded_by").order_by("-created_at")


def mapping_members(project: Project) -> QuerySet[User]:
    """Whom a peer tool's annotator may be mapped to: the project's members who sign in here."""
    return User.objects.filter(memberships__project=project, is_active=True).order_by("username")


def import_progress(batch: ImportBatch) -> dict[str, int]:
    """How far a queued or running import has read (the import writes it to the shared cache, since its rows
    stay invisible until its one transaction commits)."""
    try:
        progress = reach_broker(lambda: shared_cache.get(f"import-progress:{batch.pk}"))
    except BrokerUnreachable:  # the cache is the broker's Redis: away, the answer still goes out without progress
        progress = None
    return progress or {"lines": batch.lines_read, "percent": 0}


def draft_for(user: User, item: Item) -> Draft | None:
    return Draft.objects.filter(item=item, user=user).first()


def own_annotation(user: User, item: Item) -> Annotation | None:
    return Annotation.objects.filter(item=item, annotator=user).first()


def holds_item(user: User, item: Item) -> bool:
    """Whether ``user`` may still submit their work on ``item``: they hold its lease, or it was sent back to
    them. False once the lease ran out and the slot went to someone else: their draft is kept, but it cannot
    be submitted. (Comparisons, gold ones included: ``preferences.selectors.holds_comparison``.)"""
    if Slot.objects.filter(item=item, user=user, state=SlotState.LEASED).exists():
        return True
    return Annotation.objects.filter(item=item, annotator=user, state=AnnotationState.REJECTED).exists()


def sent_back_to(user: User, project: Project) -> QuerySet[Annotation]:
    return (
        Annotation.objects.filter(item__project=project, annotator=user, state=AnnotationState.REJECTED)
        .select_related("item")
        .prefetch_related("reviews__reviewer")
        .order_by("reviewed_at")
    )


def review_queue(project: Project, reviewer: User) -> QuerySet[Annotation]:
    """Submitted annotations waiting for review, oldest first, never the reviewer's own."""
    return (
        Annotation.objects.filter(item__project=project, state=AnnotationState.SUBMITTED)
        .exclude(annotator=reviewer)
        .select_related("annotator", "item", "rubric_version")
        .order_by("submitted_at", "pk")
    )


def items_on_hold(project: Project) -> QuerySet[Item]:
    return Item.objects.filter(project=project, state=ItemState.ON_HOLD).order_by("pk")


def project_dashboard(project: Project) -> dict[str, Any]:
    """Counts by state, per-annotator throughput and acceptance, for the project page."""
    slots = Slot.objects.filter(project=project).aggregate(
        total=Count("pk"),
        free=Count("pk", filter=Q(state=SlotState.FREE)),
        leased=Count("pk", filter=Q(state=SlotState.LEASED)),
        done=Count("pk", filter=Q(state=SlotState.DONE)),
    )
    annotations = Annotation.objects.filter(item__project=project).aggregate(
        submitted=Count("pk", filter=Q(state=AnnotationState.SUBMITTED)),
        approved=Count("pk", filter=Q(state=AnnotationState.APPROVED)),
        rejected=Count("pk", filter=Q(state=AnnotationState.REJECTED)),
    )
    items = Item.objects.filter(project=project).aggregate(
        total=Count("pk"), on_hold=Count("pk", filter=Q(state=ItemState.ON_HOLD))
    )
    people = (
        Annotation.objects.filter(item__project=project)
        .values("annotator__username")
        .annotate(
            total=Count("pk"),
            approved=Count("pk", filter=Q(state=AnnotationState.APPROVED)),
            rejected=Count("pk", filter=Q(state=AnnotationState.REJECTED)),
            revised=Count("pk", filter=Q(revision__gt=1)),
            time_ms=Sum("time_spent_ms"),
        )
        .order_by("-total", "annotator__username")
    )
    per_annotator = []
    for row in people:
        decided = row["approved"] + row["rejected"]
        per_annotator.append(
            {
                "username": row["annotator__username"],
                "total": row["total"],
                "approved": row["approved"],
                "rejected": row["rejected"],
                "acceptance": (row["approved"] / decided) if decided else None,
                "per_hour": (row["total"] * 3_600_000 / row["time_ms"]) if row["time_ms"] else None,
                "avg_ms": (row["time_ms"] // row["total"]) if row["time_ms"] else None,
            }
        )
    return {"slots": slots, "annotations": annotations, "items": items, "per_annotator": per_annotator}
