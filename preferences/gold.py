"""Gold comparisons: which one a user is served, the record that they were handed it, and their skips. Gold
items have no slots (everyone judges each once), so only a gold item handed out may be judged. Like any
comparison, a skipped gold item is left for later: it is not drawn again while other work is left, and comes
back (with any other gold item handed out and not judged) once the shared queue has nothing for the user."""

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_build, audit_event_record
from annotation.models import Item, ItemState, Skip
from core.errors import DomainError
from preferences import submit_sql
from preferences.models import GoldAssignment, Judgement


def gold_unjudged(user: User, project: Project) -> Item | None:
    """A gold item of the project that ``user`` has not judged, starting from a random one.

    A few index probes however large the project: from a random point among the gold ids (the partial index
    item_gold) to the next gold item the user has not judged, wrapping round once. "Not judged" is a
    correlated subquery on the (item, annotator) unique index; PostgreSQL keeps it as one probe per gold item
    passed over, whatever its statistics say. ORDER BY random() read every item of the project instead
    (``bench/preference_collection.py``). Gold items that follow a run of judged ones are a little likelier to
    come up; all do."""
    if connection.vendor == "postgresql":  # the same, in one statement (see annotation's item_next)
        return submit_sql.gold_unjudged(user, project)
    return submit_sql.gold_unjudged_orm(user, project)


def gold_assign(user: User, item: Item) -> None:
    """Record that ``user`` was handed the gold ``item`` (once; handed again, nothing changes), audited like
    a lease: only a gold item handed out may be judged. On PostgreSQL one statement (``submit_sql``)."""
    event = audit_event_build(
        actor=user,
        action="queue.lease",
        object_type="annotation.item",
        object_id=item.pk,
        project=item.project,
        payload={"gold": True},
    )
    served_at = timezone.now()
    if connection.vendor == "postgresql":
        submit_sql.gold_assign(user, item, served_at=served_at, event=event)
        return
    with transaction.atomic():
        submit_sql.gold_assign_orm(user, item, served_at=served_at, event=event)


def gold_assigned_locked(user: User, item: Item) -> bool:
    """Whether ``user`` was handed the gold ``item``; the row stays locked until the transaction ends."""
    return GoldAssignment.objects.select_for_update().filter(item=item, annotator=user).exists()


def gold_skip(*, user: User, item: Item) -> None:
    """``user`` puts the gold ``item`` they were handed aside: it is not drawn for them again while anything
    else is left (``gold_unjudged``), then comes back (``gold_left_over``). Audited as any skip. Raises
    ``DomainError`` when it was not handed to them or they judged it already."""
    with transaction.atomic():
        if not gold_assigned_locked(user, item) or Judgement.objects.filter(item=item, annotator=user).exists():
            raise DomainError("This item is not assigned to you.")
        Skip.objects.create(item=item, user=user)
        audit_event_record(actor=user, action="queue.skip", target=item, project=item.project, payload={})


def gold_left_over(user: User, project: Project) -> Item | None:
    """A gold item ``user`` was handed and has not judged, the ones they skipped last: what comes back once the
    shared queue has nothing for them (a skip puts work off, it never drops it). Only asked then."""
    skipped = Skip.objects.filter(item=OuterRef("item"), user=user)
    judged = Judgement.objects.filter(item=OuterRef("item"), annotator=user)
    handed = (
        GoldAssignment.objects.filter(annotator=user, item__project=project, item__state=ItemState.OPEN)
        .alias(judged=Exists(judged), skipped=Exists(skipped))
        .filter(judged=False)
        .select_related("item")
        .order_by("skipped", "served_at", "item_id")
        .first()
    )
    return handed.item if handed is not None else None
