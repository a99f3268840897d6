"""Reads of rounds used by the pages and the API."""

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse

from accounts.models import Project
from rounds.models import Round, RoundPair
from rounds.services import decided_count


def rounds_of(project: Project) -> QuerySet[Round]:
    return Round.objects.filter(project=project).select_related(
        "target", "policy_adapter", "adapter", "reward_model", "generation_run", "release", "training_job"
    )


def round_counts(round_: Round) -> dict[str, Any]:
    """What the round page and the API show of its progress: prompts, candidates, pairs, decided pairs, and once
    the release is built, the pairs in it (train and held out) and the decided ones it left out (even splits and
    ties, which make no preference)."""
    run = round_.generation_run
    decided, total = decided_count(round_) if round_.comparisons else (0, 0)
    counts = {
        "prompts": run.prompt_count if run else 0,
        "candidates": run.candidates.count() if run else 0,
        "pairs": total,
        "decided": decided,
    }
    release = round_.release
    if release is not None and release.manifest:
        rows = (release.manifest.get("counts") or {}).get("rows") or {}
        counts["released_train"] = int(rows.get("train", 0))
        counts["released_eval"] = int(rows.get("eval", 0))
        counts["left_out"] = max(decided - counts["released_train"] - counts["released_eval"], 0)
    return counts


def pairs_of(round_: Round) -> QuerySet[RoundPair]:
    return round_.pairs.select_related("prompt", "first", "second", "item").order_by("id")


def lineage_of(round_: Round) -> dict[str, Any]:
    """The chain a round's adapter came from: parent, release, generation run whose candidates were ranked."""
    adapter = round_.adapter
    return {
        "round": round_.number,
        "policy_adapter": {"id": round_.policy_adapter_id, "sha256": round_.policy_adapter.sha256}
        if round_.policy_adapter
        else None,
        "generation_run": round_.generation_run_id,
        "scoring_run": round_.scoring_run_id,
        "reward_model": round_.reward_model_id,
        "pair_policy": round_.pair_policy,
        "release": {"id": round_.release_id, "hash": round_.release.hash} if round_.release else None,
        "training_job": round_.training_job_id,
        "adapter": {"id": adapter.pk, "sha256": adapter.sha256, "parent": adapter.parent_id} if adapter else None,
        "evaluation": round_.evaluation_id,
        "promotion": round_.promotion_id,
    }


def round_marks(kind: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """``core.marks`` provider: an adapter made in a round carries the round and the generation run whose
    candidates the experts ranked (its lineage record and page show them)."""
    if kind != "adapter":
        return {}
    found: dict[int, dict[str, Any]] = {}
    for round_ in Round.objects.filter(adapter_id__in=ids):
        found[int(round_.adapter_id or 0)] = {
            "round": {
                "number": round_.number,
                "id": round_.pk,
                "url": reverse("round", args=[round_.project_id, round_.number]),
                "generation_run": round_.generation_run_id,
                "generation_run_url": reverse("generation_run", args=[round_.project_id, round_.generation_run_id]),
                "pair_policy": round_.pair_policy,
                "pair_policy_label": round_.get_pair_policy_display(),
                "policy_adapter": round_.policy_adapter_id,
            }
        }
    return found
