"""Builders for release tests: approved SFT annotations through the annotation services, and judgement
sets with known outcomes for the preference side."""

import io
import json
import uuid
from typing import Any

from accounts.models import Project, User
from annotation import services as annotation_services
from annotation.models import ImportBatch, Item
from preferences.models import Judgement
from preferences.results import display_order
from releases import services
from releases.models import Release, ReleaseItem
from tests.annotation.helpers import GOOD_SCORES, chat_line, give_rubric, import_lines
from tests.preferences.helpers import comparison_line, import_comparisons


def approve_all(project: Project, annotator: User, reviewer: User, *, answer: str = "An ideal answer.") -> int:
    """Label every open SFT item of the project as ``annotator`` and approve each as ``reviewer``."""
    done = 0
    while (slot := annotation_services.item_next(user=annotator, project=project)) is not None:
        annotation = annotation_services.annotation_submit(
            user=annotator,
            item=slot.item,
            response=f"{answer} ({slot.item.messages[0]['content']})",
            scores=GOOD_SCORES,
            flags=[],
            note="",
            time_spent_ms=9000,
            submit_key=uuid.uuid4().hex,
        )
        annotation_services.annotation_review(reviewer=reviewer, annotation=annotation, decision="approve")
        done += 1
    return done


def sft_project(project: Project, lead: User, annotator: User, reviewer: User, questions: list[str]) -> ImportBatch:
    give_rubric(project, lead)
    batch = import_lines(project, lead, *[chat_line(q) for q in questions])
    assert batch.status == "done", batch.errors
    approve_all(project, annotator, reviewer)
    return batch


def comparisons(project: Project, lead: User, prompts: list[str], *, candidates: int = 2) -> list[Item]:
    lines = [comparison_line(p, *[f"Answer {c} to: {p}" for c in range(candidates)]) for p in prompts]
    batch = import_comparisons(project, lead, *lines)
    assert batch.status == "done", batch.errors
    return list(Item.objects.filter(batch=batch).order_by("id"))


def judge(item: Item, user: User, result: dict[str, Any]) -> Judgement:
    """A stored judgement with a known result (in candidate ids): input data for the release build."""
    seed, order = display_order(user, item)
    return Judgement.objects.create(
        item=item,
        annotator=user,
        mode="ranking" if "ranking" in result else "pairwise",
        seed=seed,
        displayed_order=order,
        result=result,
        displayed_result=result,
        time_spent_ms=5000,
        idempotency_key=uuid.uuid4().hex,
    )


# The general chat of a mixin import: prompts that no release of the tests' own items comes near.
GENERAL_CHAT = [(f"General question {w} about weather and gardens", "A general answer.") for w in "abcdefgh"]


def eval_item(release: Release) -> Item:
    """An item the release put in its eval split."""
    row = ReleaseItem.objects.filter(release=release, split="eval").select_related("item").first()
    assert row is not None
    return row.item


def build(project: Project, lead: User, name: str = "rel", **recipe: Any) -> Release:
    recipe.setdefault("kind", "preference")
    release = services.release_create(actor=lead, project=project, name=name, recipe=recipe)
    built = services.release_build(release_id=release.pk)
    assert built is not None
    return built


def mixin_batch(project: Project, lead: User, pairs: list[tuple[str, str]]) -> ImportBatch:
    data = (
        "\n".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
            for q, a in pairs
        )
        + "\n"
    )
    return annotation_services.import_start(
        actor=lead,
        project=project,
        upload=io.BytesIO(data.encode()),
        source_name="general.jsonl",
        fmt="chat_jsonl",
        purpose="mixin",
    )
