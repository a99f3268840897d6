"""What is left in the queue, and why: the open slots someone can still take, the ones no member can take (and
the reason), and, for one annotator whose queue is empty, where the rest of the work went.

Reads only, for the project page and the "nothing left" pages; never on the path of "next" or a submit. The
queue's own rules are in ``annotation.queue`` (a slot goes to a member who never held a slot of its item;
skipped items come back to the skipper once nothing else is left)."""

from dataclasses import dataclass

from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from accounts.models import ROLE_PERMISSIONS, Membership, Project, ProjectPerm, User
from annotation.models import Item, ItemState, Slot, SlotState
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

    def count(condition: Q) -> Subquery:
        slots = Slot.objects.filter(condition, item=OuterRef("pk")).order_by().values("item")
        return Subquery(slots.annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField())

    items = (
        Item.objects.filter(project=project, state=ItemState.OPEN)
        .annotate(
            open=Coalesce(count(Q(state=SlotState.FREE)), 0),
            held=Coalesce(count(Q(user_id__in=_annotators(project).values("user_id"))), 0),
        )
        .filter(open__gt=0)
    )
    totals = items.aggregate(
        open_total=Coalesce(Sum("open"), 0),
        takeable=Coalesce(Sum(Least(F("open"), Greatest(Value(annotators) - F("held"), Value(0)))), 0),
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
    now = timezone.now()
    slots = Slot.objects.filter(item=OuterRef("pk"))
    open_slot = Q(state=SlotState.FREE) | Q(state=SlotState.LEASED, leased_until__lt=now)
    items = Item.objects.filter(project=project, kind=kind, gold__isnull=True).annotate(
        mine_done=Exists(slots.filter(user=user, state=SlotState.DONE)),
        has_open=Exists(slots.filter(open_slot)),
        unfinished=Exists(slots.exclude(state=SlotState.DONE)),
    )
    is_open, not_mine = Q(state=ItemState.OPEN), Q(mine_done=False)
    totals = items.aggregate(
        on_hold=Count("pk", filter=Q(state=ItemState.ON_HOLD)),
        done_by_you=Count("pk", filter=is_open & Q(mine_done=True)),
        need_others=Count("pk", filter=is_open & Q(mine_done=True, unfinished=True)),
        complete=Count("pk", filter=is_open & not_mine & Q(unfinished=False)),
        held_by_others=Count("pk", filter=is_open & not_mine & Q(unfinished=True, has_open=False)),
    )
    return LeftForYou(**{name: int(value) for name, value in totals.items()})
