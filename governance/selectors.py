"""Reads of governance's erasure and retention: erasures a user may see, and the taint marks that the release
and adapter pages and API show (registered with ``core.marks`` when the app is ready)."""

from collections import defaultdict
from typing import Any

from django.db.models import QuerySet

from accounts.models import Project
from accounts.permissions import AnyUser, is_site_staff
from governance.models import Erasure, Taint, TaintKind
from governance.permissions import erasure_project_ids

_MARKED = {"release": TaintKind.RELEASE, "adapter": TaintKind.ADAPTER, "training_job": TaintKind.TRAINING_JOB}


def erasures_for_user(user: AnyUser) -> QuerySet[Erasure]:
    """Erasures the user may see: all for site staff; else those touching only projects whose data they manage."""
    erasures = Erasure.objects.select_related("actor").order_by("-created_at", "-id")
    if is_site_staff(user):
        return erasures
    allowed = erasure_project_ids(user)
    if not allowed:
        return erasures.none()
    return erasures.exclude(projects__in=Project.objects.exclude(pk__in=allowed))


def taints_of(erasure: Erasure) -> QuerySet[Taint]:
    return Taint.objects.filter(erasure=erasure).select_related("rebuilt_as").order_by("kind", "object_id")


def taint_marks(kind: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """``core.marks`` provider: ``{id: {"tainted": {"erasures": [...], "why": [...], "rebuilt_as": id|None}}}``."""
    taint_kind = _MARKED.get(kind)
    if taint_kind is None:
        return {}
    found: dict[int, dict[str, Any]] = defaultdict(lambda: {"erasures": [], "why": [], "rebuilt_as": None})
    rows = Taint.objects.filter(kind=taint_kind, object_id__in=ids).order_by("erasure_id")
    for object_id, erasure_id, why, rebuilt in rows.values_list("object_id", "erasure_id", "why", "rebuilt_as_id"):
        mark = found[object_id]
        mark["erasures"].append(erasure_id)
        if why not in mark["why"]:
            mark["why"].append(why)
        mark["rebuilt_as"] = rebuilt or mark["rebuilt_as"]
    return {pk: {"tainted": mark} for pk, mark in found.items()}
