"""What is left in the queue, and why: the open slots someone can still take, the ones no member can take (and
the reason), and, for one annotator whose queue is empty, where the rest of the work went.

Reads only, for the project page and the "nothing left" pages; never on the path of "next" or a submit. The
queue's own rules are in ``annotation.queue`` (a slot goes to a member who never held a slot of its item;
skipped items come back to the skipper once nothing else is left)."""

from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, Greatest, Least

from accounts.models import ROLE_PERMISSIONS, Membership, Project, ProjectPerm, User
from annotation.models import ItemState, Slot, SlotState
from annotation.selectors import annotation_settings

ANNOTATING_ROLES = tuple(role for role, perms in ROLE_PERMISSIONS.items() if ProjectPerm.ANNOTATE in perms)


@dataclass(frozen=True)
class OpenSlots:
    """Free slots of open items: ``takeable`` by some member who annotates, ``stuck`` because every such member
    already worked on (or holds) the item. (A lease run out is still in progress: its holder may resume it.)"""

    takeable: int
    stuck: int
    annotators: int  # active members whose role annotates
    per_item: int  # k: annotators per item


def _annotators(project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project, role__in=ANNOTATING_ROLES, user__is_active=True)


def open_slots(project: Project) -> OpenSlots:
    """The project's open slots, split into those a member can take and those none can (two queries).

    A slot of an item can go only to a member who never held a slot of it (one judgement or label per person
    and item), so an item's open slots beyond the number of its possible takers are stuck: with ``k`` above the
    number of members who annotate, the last slots of each item wait for someone to join (or ``k`` to drop)."""
    annotators = _annotators(project).count()
    # One pass over the project's slots, grouped by item: its free slots, and how many members who annotate
    # hold one (each holds at most one per item); then summed over the items in the same statement.
    per_item = (
        Slot.objects.filter(project=project, item__state=ItemState.OPEN)
        .values("item_id")
        .annotate(
            free=Count("pk", filter=Q(state=SlotState.FREE)),
            held=Count("pk", filter=Q(user_id__in=_annotators(project).values("user_id"))),
        )
        .filter(free__gt=0)
        .order_by()
    )
    totals = per_item.aggregate(
        open_total=Coalesce(Sum("free"), 0),
        takeable=Coalesce(Sum(Least(F("free"), Greatest(Value(annotators) - F("held"), Value(0)))), 0),
    )
    takeable = int(totals["takeable"])
    return OpenSlots(
        takeable=takeable,
        stuck=int(totals["open_total"]) - takeable,
        annotators=annotators,
        per_item=annotation_settings(project).annotators_per_item,
    )


@dataclass(frozen=True)
class LeftForYou:
    """Where the work of a project's queue went, seen by one annotator whose queue is empty."""

    done_by_you: int  # items of this kind the user finished
    need_others: int  # ... of which still wait for colleagues (open, or held by one): one piece of work per person
    held_by_others: int  # items whose unfinished slots are leased to colleagues right now
    complete: int  # items with all their slots done, by others
    on_hold: int


def left_for(user: User, project: Project, *, kind: str) -> LeftForYou:
    """For the "nothing left" page: what became of the project's items of ``kind`` (gold ones aside), for
    ``user``, in one query."""
    done, free = Q(state=SlotState.DONE), Q(state=SlotState.FREE)
    per_item = (
        Slot.objects.filter(project=project, item__kind=kind, item__gold__isnull=True)
        .values("item_id", item_state=F("item__state"))
        .annotate(
            mine_done=Count("pk", filter=done & Q(user=user)),
            free=Count("pk", filter=free),
            unfinished=Count("pk", filter=~done),
        )
        .order_by()
    )
    is_open, not_mine = Q(item_state=ItemState.OPEN), Q(mine_done=0)
    totals = per_item.aggregate(
        on_hold=Count("item_id", filter=Q(item_state=ItemState.ON_HOLD)),
        done_by_you=Count("item_id", filter=is_open & Q(mine_done__gt=0)),
        need_others=Count("item_id", filter=is_open & Q(mine_done__gt=0, unfinished__gt=0)),
        complete=Count("item_id", filter=is_open & not_mine & Q(unfinished=0)),
        held_by_others=Count("item_id", filter=is_open & not_mine & Q(unfinished__gt=0, free=0)),
    )
    return LeftForYou(**{name: int(value) for name, value in totals.items()})
