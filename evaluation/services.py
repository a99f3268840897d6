"""The evaluation app's use cases. They call into the rooms that hold the parts: ``judging`` (systems, prompts,
the training-split check, the judging project) and ``results`` (the figures)."""

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from core.errors import DomainError
from evaluation import judging
from evaluation.models import Evaluation, EvaluationState, EvaluationSystem, GenerationRun
from evaluation.results import evaluation_results
from releases.models import Release
from training.models import Adapter, BaseModel

# --- Blind side-by-side evaluations ----------------------------------------------------------------------------


def evaluation_start(
    *,
    actor: User,
    project: Project,
    adapter: Adapter,
    against: dict[str, Any],
    source: str,
    extra: Sequence[dict[str, Any]] = (),
    release: Release | None = None,
    prompts: Sequence[dict[str, Any]] | None = None,
    source_name: str = "",
    decoding: dict[str, Any] | None = None,
    name: str = "",
) -> Evaluation:
    """Evaluate ``adapter`` (system 0) against ``against`` (and the ``extra`` sides, for three or more systems):
    one generation run per system on the same prompts with the same seed and decoding, then, once all of them
    succeed, blind comparisons (``evaluation_advance``). ``against`` and ``extra`` are sides as
    ``judging.resolve_side`` reads them; ``source`` is where the prompts come from (``judging.collect_prompts``).

    Raises ``DomainError``, writing nothing: an adapter of another project, an unknown side, the same model
    twice, no prompts, bad decoding settings, and prompts that are in a training split of an adapter side
    (the message says how many and which). Audited as ``evaluation.start``."""
    if adapter.project_id != project.pk:
        raise DomainError("No such adapter in this project.", field="adapter", status=404)
    systems, target = judging.resolve_systems(project, adapter, against, extra)
    found = judging.collect_prompts(project=project, source=source, release=release, prompts=prompts)
    judging.training_split_check(found, [s.adapter for s in systems if s.adapter is not None])
    settings = judging.check_decoding(decoding)
    name = (name or "").strip() or f"{adapter.name} vs {systems[1].label}"
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            project=project,
            name=name[:200],
            source=source,
            release=release,
            decoding=settings,
            deployment_target=target,
            prompt_count=len(found),
            created_by=actor,
        )
        for position, spec in enumerate(systems):
            run = generation_run_create(
                actor=actor,
                project=project,
                base_model=spec.base_model,
                adapter=spec.adapter,
                source=source,
                prompts=list(found),
                decoding=dict(settings),
                release=release,
                source_name=source_name,
                evaluation=evaluation,
            )
            EvaluationSystem.objects.create(
                evaluation=evaluation,
                position=position,
                label=spec.label[:300],
                base_model=spec.base_model,
                adapter=spec.adapter,
                run=run,
            )
        audit_event_record(
            actor=actor,
            action="evaluation.start",
            target=evaluation,
            project=project,
            payload={
                "name": evaluation.name,
                "systems": [s.label for s in systems],
                "source": source,
                "release": release.pk if release else None,
                "prompts": len(found),
                "decoding": settings,
            },
        )
    return evaluation


def evaluation_advance(*, evaluation_id: int) -> Evaluation:
    """Move a generating evaluation on when one of its runs ended: once every run succeeded, build the judging
    project and its blind comparisons (state ``judging``); when a run failed or was cancelled, fail with its
    reason. Anything else (a run still going, an evaluation already past generating) changes nothing, so the
    task may come twice."""
    with transaction.atomic():
        evaluation = judging.locked(evaluation_id)
        if evaluation.state != EvaluationState.GENERATING:
            return evaluation
        reason = judging.run_failure(evaluation)
        if reason is not None:
            return judging.evaluation_fail(evaluation=evaluation, reason=reason)
        if not judging.all_runs_succeeded(evaluation):
            return evaluation
        return judging.evaluation_judging_open(evaluation=evaluation)


def evaluation_finish(*, actor: User, evaluation: Evaluation) -> Evaluation:
    """Freeze the evaluation's figures into ``results`` (what the promotion gate reads) and finish it. Raises
    ``DomainError`` when it is not being judged or has no judgement yet. Audited as ``evaluation.finish``."""
    with transaction.atomic():
        evaluation = judging.locked(evaluation.pk)
        if evaluation.state != EvaluationState.JUDGING:
            state = evaluation.get_state_display().lower()
            raise DomainError(f"Only an evaluation being judged can be finished; this one is {state}.", status=409)
        figures = evaluation_results(evaluation)
        if not figures["judgements"]:
            raise DomainError("Nobody has judged a comparison yet: there is nothing to freeze.", status=409)
        evaluation.results = figures
        evaluation.state = EvaluationState.FINISHED
        evaluation.finished_by = actor
        evaluation.finished_at = timezone.now()
        evaluation.save(update_fields=["results", "state", "finished_by", "finished_at"])
        audit_event_record(
            actor=actor,
            action="evaluation.finish",
            target=evaluation,
            project=evaluation.project,
            payload={
                "judgements": figures["judgements"],
                "head_to_head": [
                    {k: row[k] for k in ("system", "wins", "ties", "losses", "win_rate", "low", "high")}
                    for row in figures["head_to_head"]
                ],
            },
        )
    return evaluation


# --- Generation runs (the generation part's; this placeholder keeps its signature until the merge) -------------


def generation_run_create(
    *,
    actor: User,
    project: Project,
    base_model: BaseModel,
    adapter: Adapter | None = None,
    source: str,
    prompts: list[dict[str, Any]],
    decoding: dict[str, Any],
    release: Release | None = None,
    source_name: str = "",
    evaluation: Evaluation | None = None,
) -> GenerationRun:
    """Placeholder of the generation part's service: refuses, so no evaluation starts without it."""
    raise DomainError("Generation runs are not available in this build.", status=503)


generation_run_create.placeholder = True  # type: ignore[attr-defined]
