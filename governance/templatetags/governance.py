"""Template tags of governance: the taint banner on release and adapter pages, and whether to offer erasure."""

from typing import Any

from django import template

from core.marks import marks_of

register = template.Library()


@register.inclusion_tag("governance/_taint.html")
def taint_banner(kind: str, pk: int, project_pk: int, can_rebuild: bool = False) -> dict[str, Any]:
    """The "tainted" notice of a release or an adapter, with what to rebuild (empty when not tainted)."""
    return {
        "kind": kind,
        "pk": pk,
        "project_pk": project_pk,
        "taint": marks_of(kind, pk).get("tainted"),
        "can_rebuild": can_rebuild,
    }
