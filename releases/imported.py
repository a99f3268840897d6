"""Where a release's imported judgements and answers came from: those on its items that another tool's file
brought (Label Studio, Argilla, OpenAssistant), grouped by tool, project and import, with their annotators by
pseudonym and the span of times the tool recorded. Part of the manifest (so of the release hash) and of the
datasheet's "(b) Data collection and origin", only when there are any."""

from typing import Any

from django.db.models import QuerySet

from annotation.models import Annotation, AnnotationState
from preferences.models import Judgement
from releases.models import Release, ReleaseItem
from releases.selection import pseudonym


def imported_origin(release: Release) -> list[dict[str, Any]]:
    """Per (tool, tool's project, import batch): how many imported judgements (a preference release) or approved
    imported answers (SFT) its items carry, by how many annotators (pseudonyms), and the first and last time
    the tool recorded. Empty when none of its items came with any."""
    items = ReleaseItem.objects.filter(release=release).values("item_id")
    rows: QuerySet[Any, tuple[int, Any]]
    if release.kind == "preference":
        rows = Judgement.objects.filter(item_id__in=items, origin__isnull=False, is_gold=False).values_list(
            "annotator_id", "origin"
        )
    else:
        rows = Annotation.objects.filter(
            item_id__in=items, origin__isnull=False, state=AnnotationState.APPROVED
        ).values_list("annotator_id", "origin")
    groups: dict[tuple[str, str, int], dict[str, Any]] = {}
    for annotator_id, origin in rows.iterator(chunk_size=5000):
        key = (str(origin.get("tool", "")), str(origin.get("project", "")), int(origin.get("batch") or 0))
        group = groups.setdefault(key, {"count": 0, "annotators": set(), "times": []})
        group["count"] += 1
        group["annotators"].add(pseudonym(release.project_id, annotator_id))
        if origin.get("at"):
            group["times"].append(str(origin["at"]))
    return [
        {
            "tool": tool,
            "project": project,
            "batch": batch,
            "judgements" if release.kind == "preference" else "answers": group["count"],
            "annotators": sorted(group["annotators"]),
            "first": min(group["times"]) if group["times"] else None,
            "last": max(group["times"]) if group["times"] else None,
        }
        for (tool, project, batch), group in sorted(groups.items())
    ]
