"""Shared builders for annotation tests: a rubric, JSONL files, imported items."""

import io
import json
from typing import Any

from accounts.models import Project, User
from annotation import services
from annotation.models import ImportBatch, Item, RubricVersion

CRITERIA: list[dict[str, Any]] = [
    {"name": "Correct", "scale": "pass_fail", "required": True},
    {"name": "Helpful", "scale": "likert5", "required": True},
    {"name": "Tone", "scale": "categories", "categories": ["formal", "casual"], "required": False},
]
GOOD_SCORES = {"correct": "pass", "helpful": "4"}


def chat_line(question: str, answer: str | None = "An answer.", **extra: Any) -> str:
    messages = [{"role": "user", "content": question}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return json.dumps({"messages": messages, **extra})


def jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def give_rubric(project: Project, lead: User) -> RubricVersion:
    return services.rubric_save(actor=lead, project=project, guidelines="Be **exact**.", criteria=CRITERIA)


def set_k(project: Project, lead: User, k: int, lease: int = 30) -> None:
    """``k`` annotators an item, each lease ``lease`` minutes long; PII replaced, with no patterns or terms of the
    project's own."""
    services.annotation_settings_update(
        actor=lead, project=project, annotators_per_item=k, lease_minutes=lease, pii_mode="replace", pii_patterns=[],
        pii_terms=[],
    )  # fmt: skip


def import_lines(project: Project, lead: User, *lines: str, skip_bad_lines: bool = False) -> ImportBatch:
    return services.import_start(
        actor=lead,
        project=project,
        upload=io.BytesIO(jsonl(*lines)),
        source_name="test.jsonl",
        fmt="chat_jsonl",
        skip_bad_lines=skip_bad_lines,
    )


def import_items(project: Project, lead: User, count: int) -> list[Item]:
    batch = import_lines(project, lead, *[chat_line(f"Question number {n}?") for n in range(count)])
    assert batch.status == "done", batch.errors
    return list(Item.objects.filter(batch=batch).order_by("id"))
