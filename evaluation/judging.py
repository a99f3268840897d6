"""Blind side-by-side evaluation, the parts before the results: which systems face each other, which prompts they
answer (none that either side was trained on), and, once every system has answered, the judging project whose
comparisons the preference pages serve like any other, with the systems' names kept from the annotators.

A candidate's provenance (``Item.candidates[i]["provenance"]``, which no annotator's page or answer shows) names
the system it came from under ``extra``: ``{"evaluation", "system", "run", "candidate", "prompt"}``. Which system is
candidate 0 is shuffled per prompt (seeded by the evaluation and the prompt), so the stored order says nothing."""

import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from accounts.models import Membership, Project, Role, User
from accounts.services import audit_event_record, membership_add, project_create
from annotation import services as annotation_services
from annotation.models import AnnotationSettings, Item, RubricVersion
from annotation.parsing import ImportFormat
from core.errors import DomainError
from evaluation.decoding import Decoding
from evaluation.models import (
    Candidate,
    DeploymentTarget,
    Evaluation,
    EvaluationState,
    EvaluationSystem,
    GenerationPrompt,
    PromptSource,
)
from evaluation.prompts import prompts_scrubbed
from preferences import services as preference_services
from preferences.models import JudgementMode, PreferenceSettings
from releases.models import Release, ReleaseItem
from releases.splits import prompt_digest
from training.models import Adapter, BaseModel, JobState

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
    return f"adapter {adapter.name} (job #{adapter.job_id})"


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


# --- Judging ---------------------------------------------------------------------------------------------------


def run_failure(evaluation: Evaluation) -> str | None:
    """Why the evaluation cannot be judged (a system's run failed or was cancelled), or None."""
    for system in evaluation.systems.select_related("run"):
        run = system.run
        if run is None:
            return f"{system.label} has no generation run."
        if run.state == JobState.FAILED:
            return f"Generation run #{run.pk} ({system.label}) failed: {run.failure_reason or 'no reason given'}"
        if run.state == JobState.CANCELLED:
            return f"Generation run #{run.pk} ({system.label}) was cancelled."
    return None


def all_runs_succeeded(evaluation: Evaluation) -> bool:
    return not evaluation.systems.exclude(run__state=JobState.SUCCEEDED).exists()


def comparison_lines(evaluation: Evaluation, systems: Sequence[EvaluationSystem]) -> tuple[list[str], int]:
    """One comparison JSONL line per prompt that every system answered differently, the systems' answers in
    an order shuffled per prompt (seeded: the same evaluation gives the same lines). Returns the lines and how
    many prompts were left out because two systems gave the same answer (nothing to judge)."""
    answers: dict[str, dict[int, Candidate]] = {}  # prompt external key -> system position -> answer
    prompts: dict[str, GenerationPrompt] = {}
    for system in systems:
        for candidate in Candidate.objects.filter(run_id=system.run_id, sample=0).select_related("prompt"):
            key = _prompt_key(candidate.prompt)
            answers.setdefault(key, {})[system.position] = candidate
            if system.position == 0:
                prompts[key] = candidate.prompt
    lines: list[str] = []
    identical = 0
    for key, prompt in sorted(prompts.items(), key=lambda kv: kv[1].index):
        by_system = answers[key]
        if len(by_system) != len(systems):
            continue
        if len({by_system[s.position].text.strip() for s in systems}) < len(systems):
            identical += 1
            continue
        order = [s.position for s in systems]
        random.Random(f"evaluation-{evaluation.pk}-prompt-{prompt.index}").shuffle(order)  # noqa: S311
        by_position = {s.position: s for s in systems}
        candidates = [_candidate_json(evaluation, by_position[p], by_system[p]) for p in order]
        line = {
            "messages": prompt.messages,
            "candidates": candidates,
            "metadata": prompt.metadata or {},
            "id": f"evaluation-{evaluation.pk}-prompt-{prompt.index}",
        }
        lines.append(json.dumps(line, ensure_ascii=False))
    return lines, identical


def _prompt_key(prompt: GenerationPrompt) -> str:
    # Every run of an evaluation answers the same list in the same order: the index pairs them up.
    return str(prompt.index)


def _candidate_json(evaluation: Evaluation, system: EvaluationSystem, candidate: Candidate) -> dict[str, Any]:
    run = system.run
    assert run is not None
    return {
        "content": candidate.text,
        "model": system.base_model.name,
        "adapter": system.adapter.name if system.adapter else "",
        "decoding": run.decoding,
        "evaluation": evaluation.pk,
        "system": system.position,
        "run": run.pk,
        "candidate": candidate.pk,
        "prompt": candidate.prompt.index,
        "seed": candidate.seed,
    }


def judging_project_build(*, evaluation: Evaluation, systems: Sequence[EvaluationSystem]) -> Project:
    """The evaluation's own project: the source project's members with their roles (the evaluation's creator an
    admin), its rubric with a blind-evaluation guideline, its k-overlap and PII settings, pairwise preferences
    (ranking with three or more systems; per criterion when the source judges per criterion), and the comparisons
    imported through the normal import path (scrubbed, slotted, queued). Call inside a transaction."""
    source = evaluation.project
    actor = evaluation.created_by
    judging = project_create(
        actor=actor,
        # Annotators see the project's name: never the evaluation's, which may name the models.
        name=f"Blind evaluation #{evaluation.pk} · {source.name}"[:200],
        description="Blind side-by-side judging: which model wrote which answer is hidden.",
    )
    members = Membership.objects.filter(project=source, user__is_active=True).select_related("user")
    for membership in members:
        membership_add(actor=actor, project=judging, user=membership.user, role=membership.role)
    if not any(m.user_id == actor.pk for m in members) and actor.is_active:
        membership_add(actor=actor, project=judging, user=actor, role=Role.PROJECT_ADMIN)

    settings = AnnotationSettings.objects.filter(project=source).first()
    annotation_services.annotation_settings_update(
        actor=actor,
        project=judging,
        annotators_per_item=settings.annotators_per_item if settings else DEFAULT_ANNOTATORS_PER_ITEM,
        lease_minutes=settings.lease_minutes if settings else 30,
        pii_mode=settings.pii_mode if settings else "replace",
        pii_patterns=settings.pii_patterns if settings else [],
        pii_terms=settings.pii_terms if settings else [],
        pii_uncertain=settings.pii_uncertain if settings else None,
        pii_phone_region=settings.pii_phone_region if settings else None,
    )
    rubric = RubricVersion.objects.filter(project=source).order_by("-version").first()
    guidelines = "\n\n".join(part for part in (BLIND_GUIDELINE, rubric.guidelines if rubric else "") if part)
    annotation_services.rubric_save(
        actor=actor,
        project=judging,
        guidelines=guidelines,
        criteria=(rubric.criteria if rubric and rubric.criteria else DEFAULT_CRITERIA),
    )
    preferences = PreferenceSettings.objects.filter(project=source).first()
    mode = JudgementMode.PAIRWISE
    if len(systems) > 2:
        mode = JudgementMode.RANKING
    elif preferences is not None and preferences.mode == JudgementMode.PER_CRITERION:
        mode = JudgementMode.PER_CRITERION
    copied = (
        {
            name: getattr(preferences, name)
            for name in ("rationale_required", "gold_rate", "gold_accuracy_threshold", "gold_minimum", "fast_fraction")
        }
        if preferences
        else {}
    )
    preference_services.preference_settings_update(actor=actor, project=judging, mode=mode, **copied)
    return judging


def comparisons_import(*, evaluation: Evaluation, judging: Project, lines: list[str]) -> None:
    """Import the comparisons into the judging project the way any comparison file is imported."""
    upload = io.BytesIO(("\n".join(lines) + "\n").encode())
    batch = annotation_services.import_start(
        actor=evaluation.created_by,
        project=judging,
        upload=upload,
        source_name=f"evaluation-{evaluation.pk}.jsonl",
        fmt=ImportFormat.COMPARISON_JSONL,
        skip_bad_lines=True,
        purpose="annotation",
    )
    if batch.status == "failed":
        raise DomainError(f"The comparisons could not be imported: {batch.failure_reason}")


def evaluation_judging_open(*, evaluation: Evaluation) -> Evaluation:
    """Build the judging project of an evaluation whose runs all succeeded, and set it to judging. Call inside
    a transaction holding the evaluation's row."""
    systems = list(evaluation.systems.select_related("base_model", "adapter", "run"))
    lines, identical = comparison_lines(evaluation, systems)
    if not lines:
        return evaluation_fail(
            evaluation=evaluation,
            reason=f"The systems gave the same answer to every prompt ({identical}): there is nothing to judge. "
            "An adapter that changes nothing (untrained, or trained too little) answers as its base model does.",
        )
    judging = judging_project_build(evaluation=evaluation, systems=systems)
    comparisons_import(evaluation=evaluation, judging=judging, lines=lines)
    evaluation.judging_project = judging
    evaluation.state = EvaluationState.JUDGING
    evaluation.save(update_fields=["judging_project", "state"])
    audit_event_record(
        actor=evaluation.created_by,
        action="evaluation.judging_open",
        target=evaluation,
        project=evaluation.project,
        payload={
            "judging_project": judging.pk,
            "comparisons": len(lines),
            "identical_answers": identical,
            "at": timezone.now().isoformat(),
        },
    )
    return evaluation


def evaluation_fail(*, evaluation: Evaluation, reason: str, actor: User | None = None) -> Evaluation:
    """Mark an evaluation failed with its reason (call inside a transaction holding its row)."""
    evaluation.state = EvaluationState.FAILED
    evaluation.failure_reason = reason
    evaluation.save(update_fields=["state", "failure_reason"])
    audit_event_record(
        actor=actor, action="evaluation.fail", target=evaluation, project=evaluation.project, payload={"reason": reason}
    )
    return evaluation


def locked(evaluation_id: int) -> Evaluation:
    return Evaluation.objects.select_for_update().select_related("project", "created_by").get(pk=evaluation_id)


def prompts_from_upload(data: bytes) -> list[dict[str, Any]]:
    """Prompts from a JSONL file: one ``{"messages": [...]}`` or ``{"prompt": "..."}`` object a line, with
    optional ``metadata`` (topic, channel, ...) and ``external_id``. Raises ``DomainError`` naming the first bad
    line."""
    found: list[dict[str, Any]] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DomainError("The prompt file is not UTF-8 text.", field="upload") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise DomainError(f"Line {number} of the prompt file is not JSON.", field="upload") from None
        if not isinstance(obj, dict):
            raise DomainError(f"Line {number} of the prompt file is not an object.", field="upload")
        messages = obj.get("messages")
        if messages is None and isinstance(obj.get("prompt"), str):
            messages = [{"role": "user", "content": obj["prompt"]}]
        valid = (
            isinstance(messages, list)
            and messages
            and all(
                isinstance(m, dict)
                and isinstance(m.get("content"), str)
                and m.get("role") in {"system", "user", "assistant"}
                for m in messages
            )
        )
        if not valid:
            raise DomainError(f"Line {number} needs 'messages' (role and content) or a 'prompt'.", field="upload")
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DomainError(f"Line {number}: 'metadata' must be an object.", field="upload")
        found.append({"messages": messages, "metadata": metadata, "external_id": str(obj.get("external_id") or "")})
    return found
