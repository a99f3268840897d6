"""Gold comparisons: which one a user is served, and the record that they were handed it. Gold items have
no slots (everyone judges each once), so only a gold item handed out may be judged."""

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_build
from annotation.models import Item
from preferences import submit_sql
from preferences.models import GoldAssignment


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
