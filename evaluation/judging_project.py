"""The judging project of a blind evaluation, once every system has answered: its members, rubric, settings and
the comparisons, imported through the ordinary pipeline with the systems' names kept in the candidates'
provenance only and the order shuffled per prompt; and the evaluation's moves (judging, failed)."""

import io
import json
import random
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from django.utils import timezone

from accounts.models import Membership, Project, Role, User
from accounts.services import audit_event_record, membership_add, project_create
from annotation import services as annotation_services
from annotation.models import AnnotationSettings, RubricVersion
from annotation.parsing import ImportFormat
from core import followups
from core.errors import DomainError
from evaluation.judging import BLIND_GUIDELINE, DEFAULT_ANNOTATORS_PER_ITEM, DEFAULT_CRITERIA
from evaluation.models import (
    Candidate,
    Evaluation,
    EvaluationState,
    EvaluationSystem,
    GenerationPrompt,
)
from preferences import services as preference_services
from preferences.models import JudgementMode, PreferenceSettings
from training.models import JobState

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
    codes = blind_codes(evaluation, systems)
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
        candidates = [_candidate_json(evaluation, by_position[p], by_system[p], codes[p]) for p in order]
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


def blind_codes(evaluation: Evaluation, systems: Sequence[EvaluationSystem]) -> dict[int, str]:
    """Each system's name inside the judging project: "System K", "System Q"..., letters drawn per evaluation, so
    that neither a model's name nor which side is the adapter under evaluation reaches anyone who judges there
    (the project's agreement page lists win rates per system; a reviewer there judges too). The evaluation's
    own pages name the systems."""
    letters = list("BCDFGHJKLMNPQRSTVWXZ")
    random.Random(f"evaluation-{evaluation.pk}-codes").shuffle(letters)  # noqa: S311
    ordered = sorted(systems, key=attrgetter("position"))
    return {system.position: f"System {letters[n]}" for n, system in enumerate(ordered)}


def _candidate_json(
    evaluation: Evaluation, system: EvaluationSystem, candidate: Candidate, code: str
) -> dict[str, Any]:
    run = system.run
    assert run is not None
    return {
        "content": candidate.text,
        "model": code,  # not the model's name: see blind_codes
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
    evaluation.identical_answers = identical
    evaluation.save(update_fields=["identical_answers"])
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
    followups.ended("evaluation", evaluation.pk)
    audit_event_record(
        actor=actor, action="evaluation.fail", target=evaluation, project=evaluation.project, payload={"reason": reason}
    )
    return evaluation


def locked(evaluation_id: int) -> Evaluation:
    return (
        Evaluation.objects.select_for_update(of=("self",)).select_related("project", "created_by").get(pk=evaluation_id)
    )
