"""“Refresh the eval set”: a new version of the project's latest release whose recipe puts recent items on the
evaluation side by name (``Recipe.eval_items``), chosen to close what the latest drift report found: the recent
prompts farthest from any eval prompt, then recent items of the strata the eval set holds too few of (coverage
gaps and flagged keys' values whose recent share exceeds their eval share). Every earlier eval item stays in eval
(the split is sticky), and no item ever released on the training side is chosen, so nothing moves from train to
eval. The release goes through ``release_create``: audited, built by a worker."""

import math
from collections import Counter
from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation.models import Annotation, AnnotationState, Item
from core.errors import DomainError
from preferences.models import Judgement
from releases.drift import NONE, eval_health_settings, eval_rows, metadata_value, recent_items
from releases.models import FROZEN_STATES, Release, ReleaseItem, ReleaseState
from releases.selectors import latest_drift_report
from releases.services import release_create

MAX_ADDED = 500  # recent items added by one refresh

ITEM_KINDS = {"sft": "sft", "preference": "comparison"}


def refresh_candidates(project: Project, release: Release) -> tuple[list[int], dict[str, int]]:
    """The recent items to put on the evaluation side, in the order chosen, and why (counts by reason)."""
    settings = eval_health_settings(project)
    end = timezone.now()
    current_eval = eval_rows(project, None)
    released_train = ReleaseItem.objects.filter(
        release__project=project, release__state__in=FROZEN_STATES, split="train"
    ).values("item_id")
    pool = (
        recent_items(project, end - timedelta(days=settings.window_days), end, current_eval)
        .filter(kind=ITEM_KINDS.get(release.kind, release.kind))
        .exclude(pk__in=released_train)
        .exclude(pk__in=list(release.recipe.get("eval_items") or []))
    )
    eligible = dict(pool.order_by("pk").values_list("pk", "metadata"))
    chosen: list[int] = []
    why: Counter[str] = Counter()

    def take(item_id: int, reason: str) -> None:
        if item_id in eligible and item_id not in chosen and len(chosen) < MAX_ADDED:
            chosen.append(item_id)
            why[reason] += 1

    report = latest_drift_report(project.pk)
    result: dict[str, Any] = report.result if report is not None else {}
    for row in result.get("farthest", []):
        take(int(row["item"]), "far from every eval prompt")
    eval_meta = list(Item.objects.filter(pk__in=current_eval.values("item_id")).values_list("metadata", flat=True))
    eval_total = max(1, len(eval_meta))
    short: list[tuple[str, str, int]] = []  # (key, value, eval items missing)
    for key, figures in (result.get("keys") or {}).items():
        for row in figures["values"]:
            if row["value"] == NONE or not row["recent"]:
                continue
            target = row["recent_share"] * eval_total if figures.get("flagged") else 0
            missing = math.ceil(max(target, settings.min_eval_per_stratum) - row["eval"])
            if missing > 0:
                short.append((key, row["value"], missing))
    if not result:  # no report yet: the eval set as one stratum, up to the coverage minimum
        short.append(("", "", settings.min_eval_per_stratum - len(eval_meta)))
    for key, value, missing in short:
        matching = [pk for pk, meta in eligible.items() if not key or metadata_value((meta or {}).get(key)) == value]
        for item_id in matching[: max(0, missing)]:
            take(item_id, f"{key} = {value}" if key else "too few eval items")
    return chosen, dict(why)


def labelled(kind: str, item_ids: list[int]) -> int:
    """How many of the items a build would take now (an approved annotation, or a judgement); the others join the
    eval side once labelled, in a later build of the same recipe."""
    if kind == "preference":
        return Judgement.objects.filter(item_id__in=item_ids).values("item_id").distinct().count()
    approved = Annotation.objects.filter(item_id__in=item_ids, state=AnnotationState.APPROVED)
    return approved.values("item_id").distinct().count()


def eval_set_refresh(*, actor: User, project: Project) -> Release:
    """Define the next version of the project's latest built release with recent items added to its eval side
    (``refresh_candidates``) and queue its build. Raises ``DomainError`` (409) when the project has no built
    release or no recent item to add. Audited as ``drift.refresh_eval_set`` beside the release's own events."""
    latest = Release.objects.filter(project=project, state=ReleaseState.BUILT).order_by("-built_at", "-id").first()
    if latest is None:
        raise DomainError("Build a release first: the refresh makes its next version.", status=409)
    chosen, why = refresh_candidates(project, latest)
    if not chosen:
        raise DomainError(
            "No recent item to add: every recent item is in a release already, or none was imported in the window.",
            status=409,
        )
    recipe = dict(latest.recipe) | {"eval_items": sorted(set(latest.recipe.get("eval_items") or []) | set(chosen))}
    release = release_create(
        actor=actor, project=project, name=latest.name, recipe=recipe, assumptions=latest.assumptions
    )
    report = latest_drift_report(project.pk)
    audit_event_record(
        actor=actor, action="drift.refresh_eval_set", target=release, project=project,
        payload={
            "from": latest.pk, "added": len(chosen), "labelled": labelled(latest.kind, chosen), "why": why,
            "report": report.pk if report else None,
        },
    )  # fmt: skip
    return release
