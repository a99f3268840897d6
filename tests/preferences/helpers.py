import io
import json
from typing import Any

from accounts.models import Project, User
from annotation import services as annotation_services
from annotation.models import ImportBatch, Item
from preferences import results, services


def comparison_line(prompt: str, *contents: str, models: tuple[str, ...] = ("m-alpha", "m-beta"), **extra: Any) -> str:
    candidates = [
        {"content": c, "model": models[i % len(models)], "decoding": {"temperature": 0.7}}
        for i, c in enumerate(contents)
    ]
    return json.dumps({"prompt": prompt, "candidates": candidates, **extra})


def import_comparisons(project: Project, lead: User, *lines: str) -> ImportBatch:
    return annotation_services.import_start(
        actor=lead, project=project, upload=io.BytesIO(("\n".join(lines) + "\n").encode()),
        source_name="cmp.jsonl", fmt="comparison_jsonl",
    )  # fmt: skip


def make_comparisons(project: Project, lead: User, count: int, *, candidates: int = 2) -> list[Item]:
    lines = [comparison_line(f"Prompt {n}?", *[f"Answer {n}.{c}" for c in range(candidates)]) for n in range(count)]
    batch = import_comparisons(project, lead, *lines)
    assert batch.status == "done", batch.errors
    return list(Item.objects.filter(batch=batch).order_by("id"))


def set_mode(project: Project, lead: User, mode: str, **values: Any) -> None:
    services.preference_settings_update(actor=lead, project=project, mode=mode, **values)


def letter_of(user: User, item: Item, candidate: int) -> str:
    """The letter under which ``user`` sees ``candidate``."""
    _, order = results.display_order(user, item)
    return results.LETTERS[order.index(candidate)]


def one_gold_and_one_plain(project: Project, lead: User) -> tuple[Item, Item]:
    """A gold comparison (candidate 1 of 2 is right) and a plain one, imported together."""
    import_comparisons(
        project, lead, comparison_line("Which is right?", "Right", "Wrong", gold=1), comparison_line("Plain?", "x", "y")
    )
    return (
        Item.objects.get(project=project, gold__isnull=False),
        Item.objects.get(project=project, gold__isnull=True),
    )
