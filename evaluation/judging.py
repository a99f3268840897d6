"""Blind side-by-side evaluation, the parts before any answer: which systems face each other and which prompts they
answer (none that either side was trained on). Once every system has answered, ``evaluation.judging_project``
builds the project whose comparisons the preference pages serve like any other, the names kept from annotators.

A candidate's provenance (``Item.candidates[i]["provenance"]``, which no annotator's page or answer shows) names
the system it came from under ``extra``: ``{"evaluation", "system", "run", "candidate", "prompt"}``. Which system is
candidate 0 is shuffled per prompt (seeded by the evaluation and the prompt), so the stored order says nothing."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from accounts.models import Project
from annotation.models import Item
from core.errors import DomainError
from evaluation.decoding import Decoding
from evaluation.models import (
    DeploymentTarget,
    PromptSource,
)
from evaluation.prompts import prompts_scrubbed
from releases.models import Release, ReleaseItem
from releases.splits import prompt_digest
from training.models import Adapter, BaseModel

AGAINST_KINDS = ("base_model", "adapter", "deployment_target")
DEFAULT_ANNOTATORS_PER_ITEM = 2
MAX_PROMPTS = 5000
MAX_SYSTEMS = 6
# The answers an evaluation generates: one per prompt and system, with the same seed and settings on every side.
DEFAULT_DECODING: dict[str, Any] = {
    "candidates": 1,
    "temperature": 0.7,
    "top_p": 0.95,
    "max_new_tokens": 256,
    "seed": 1234,
    "batch_size": 8,
}
BLIND_GUIDELINE = (
    "## Blind evaluation\n\n"
    "Each comparison shows answers written by different models to the same prompt. Which model wrote which "
    "answer is hidden, and the order is shuffled for each of you: judge the answers only. Choose a tie when "
    "neither answer is better."
)
ROLES = {"system", "user", "assistant"}
DEFAULT_CRITERIA = [{"name": "Overall quality", "scale": "likert5"}]


@dataclass(frozen=True)
class SystemSpec:
    """One side to evaluate, before it is written: the policy and what the results call it."""

    base_model: BaseModel
    adapter: Adapter | None
    label: str


def adapter_label(adapter: Adapter) -> str:
    # An adapter's name carries its job ("tiny + prefs v1 (DPO, job #4)"); a renamed one may not.
    job = f"job #{adapter.job_id}"
    return f"adapter {adapter.name}" if job in adapter.name else f"adapter {adapter.name} ({job})"


def base_model_label(base_model: BaseModel) -> str:
    return f"base model {base_model.name}"


def _policy(base_model: BaseModel, adapter: Adapter | None) -> SystemSpec:
    label = adapter_label(adapter) if adapter is not None else base_model_label(base_model)
    return SystemSpec(base_model=base_model, adapter=adapter, label=label)


def resolve_side(
    project: Project, adapter: Adapter, side: dict[str, Any]
) -> tuple[SystemSpec, DeploymentTarget | None]:
    """The system a side names: ``{"kind": "base_model", "base_model": id}`` (the adapter's own base model when
    no id is given), ``{"kind": "adapter", "adapter": id}`` (an adapter of the project) or ``{"kind":
    "deployment_target", "target": id}`` (the target's current model). Raises ``DomainError`` (404 for an id
    that names nothing of the project)."""
    kind = side.get("kind")
    if kind == "base_model":
        if side.get("base_model") in (None, ""):
            return _policy(adapter.base_model, None), None
        base_model = BaseModel.objects.filter(pk=_id(side, "base_model"), state="ready").first()
        if base_model is None:
            raise DomainError("No such ready base model.", field="against", status=404)
        return _policy(base_model, None), None
    if kind == "adapter":
        other = Adapter.objects.filter(project=project, pk=_id(side, "adapter")).select_related("base_model").first()
        if other is None:
            raise DomainError("No such adapter in this project.", field="against", status=404)
        return _policy(other.base_model, other), None
    if kind == "deployment_target":
        target = (
            DeploymentTarget.objects.filter(project=project, pk=_id(side, "target"))
            .select_related("base_model", "current_adapter__base_model")
            .first()
        )
        if target is None:
            raise DomainError("No such deployment target in this project.", field="against", status=404)
        return _policy(target.base_model, target.current_adapter), target
    raise DomainError(f"Evaluate against one of: {', '.join(AGAINST_KINDS)}.", field="against")


def _id(side: dict[str, Any], key: str) -> int:
    try:
        return int(side.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DomainError(f"“{key}” must be an id.", field="against") from None


def resolve_systems(
    project: Project, adapter: Adapter, against: dict[str, Any], extra: Sequence[dict[str, Any]] = ()
) -> tuple[list[SystemSpec], DeploymentTarget | None]:
    """Every system of an evaluation, the adapter under evaluation first, and the deployment target named (if
    any). Raises ``DomainError`` when a side is the adapter itself or two sides are the same policy."""
    systems = [_policy(adapter.base_model, adapter)]
    target: DeploymentTarget | None = None
    for side in [against, *extra]:
        system, named = resolve_side(project, adapter, side)
        target = target or named
        systems.append(system)
    if len(systems) > MAX_SYSTEMS:
        raise DomainError(f"At most {MAX_SYSTEMS} systems in one evaluation.", field="against")
    seen: set[tuple[int, int | None]] = set()
    for system in systems:
        key = (system.base_model.pk, system.adapter.pk if system.adapter else None)
        if key in seen:
            raise DomainError(f"{system.label} appears twice: each side must be a different model.", field="against")
        seen.add(key)
    return systems, target


def collect_prompts(
    *, project: Project, source: str, release: Release | None, prompts: Sequence[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """The prompts to answer, as ``generation_run_create`` takes them: a release's held-out (eval) split, the
    project's non-gold items, or given prompts (an upload, already parsed). Raises ``DomainError`` for a
    missing or foreign release and when there is no prompt."""
    if source == PromptSource.RELEASE_EVAL:
        if release is None or release.project_id != project.pk:
            raise DomainError(
                "Choose a release of this project: its held-out split gives the prompts.", field="release"
            )
        held_out = (
            ReleaseItem.objects.filter(release=release, split="eval")
            .order_by("item_id")
            .values_list("item_id", "item__messages", "item__metadata", "item__external_id")
        )
        found = [_prompt(messages, meta, external_id, item_id) for item_id, messages, meta, external_id in held_out]
    elif source == PromptSource.PROJECT_ITEMS:
        items = (
            Item.objects.filter(project=project, gold__isnull=True)
            .order_by("id")
            .values_list("id", "messages", "metadata", "external_id")[: MAX_PROMPTS + 1]
        )
        found = [_prompt(messages, meta, external_id, item_id) for item_id, messages, meta, external_id in items]
    elif source == PromptSource.UPLOAD:
        found = [
            _prompt(p.get("messages") or [], p.get("metadata") or {}, str(p.get("external_id") or ""), None)
            for p in prompts or []
        ]
        found = prompts_scrubbed(project=project, prompts=[p for p in found if p["messages"]])
    else:
        raise DomainError(
            "Prompts come from a release's held-out split, the project's items or a file.", field="source"
        )
    found = [p for p in found if p["messages"]]
    if not found:
        raise DomainError("There are no prompts to evaluate on.", field="source")
    if len(found) > MAX_PROMPTS:
        raise DomainError(f"At most {MAX_PROMPTS} prompts in one evaluation.", field="source")
    return found


def _prompt(
    messages: list[dict[str, Any]], metadata: dict[str, Any], external_id: str, item_id: int | None
) -> dict[str, Any]:
    # The answer to generate is the next assistant turn: a conversation that already ends with one is cut before it.
    while messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    return {"messages": messages, "metadata": metadata or {}, "external_id": external_id or "", "item_id": item_id}


def training_split_check(prompts: Sequence[dict[str, Any]], adapters: Sequence[Adapter]) -> None:
    """Refuse prompts that an adapter side was trained on: a prompt whose digest (``releases.splits.prompt_digest``,
    a release item's ``group_hash``) is among the train-split items of any adapter's release. Raises
    ``DomainError`` naming how many prompts are in a training split and the first few."""
    releases = {a.release_id for a in adapters}
    if not releases:
        return
    trained = set(
        ReleaseItem.objects.filter(release_id__in=releases, split="train").values_list("group_hash", flat=True)
    )
    leaked = [p for p in prompts if prompt_digest(p["messages"]) in trained]
    if leaked:
        first = "; ".join(f"“{_excerpt(p['messages'])}”" for p in leaked[:3])
        raise DomainError(
            f"{len(leaked)} of {len(prompts)} prompts are in a training split of "
            f"{'the adapter' if len(adapters) == 1 else 'an adapter'} under evaluation (a model is not judged on "
            f"what it was trained on): {first}{' …' if len(leaked) > 3 else ''}",
            field="source",
        )


def _excerpt(messages: list[dict[str, Any]]) -> str:
    text = str(messages[-1].get("content", "")) if messages else ""
    return text if len(text) <= 60 else text[:57] + "…"


def check_decoding(decoding: dict[str, Any] | None) -> dict[str, Any]:
    """The decoding settings every side uses: the evaluation's defaults overridden by those given, one candidate
    a prompt, checked as every run's are (``Decoding.from_input``, which raises ``DomainError``)."""
    return Decoding.from_input({**DEFAULT_DECODING, **(decoding or {}), "candidates": 1}).as_dict()
