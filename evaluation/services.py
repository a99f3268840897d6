"""The use cases of the evaluation app. Every state change is audited.

- Generation runs: define one (policy, prompts, decoding) and queue it on the gpu queue, and cancel one. Where
  prompts come from is ``evaluation.prompts``; a run's life on its worker is ``evaluation.lifecycle``.
- Blind evaluations: start, advance (the judging project, once every run succeeded), finish; the parts are in
  ``evaluation.judging`` (systems, prompts, the training-split check), ``evaluation.judging_project`` and
  ``evaluation.results`` (the figures).
- Deployment targets, promotion and rollback: the gate, the four-eyes rules and the carrying out are in
  ``evaluation.deployment``, re-exported here.
- Scoring runs: a reward model scores a generation run's or the project's comparisons' answers on the gpu
  queue; start, cancel and the run's life on its worker are in ``evaluation.scoring_runs``, re-exported here."""

import uuid
from collections.abc import Sequence
from typing import IO, Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from core import followups
from core.dispatch import send_on_commit
from core.errors import DomainError
from evaluation import judging, judging_project
from evaluation.decoding import Decoding
from evaluation.deployment import deployment_target_create as deployment_target_create
from evaluation.deployment import deployment_target_update as deployment_target_update
from evaluation.deployment import promotion_approve as promotion_approve
from evaluation.deployment import promotion_refuse as promotion_refuse
from evaluation.deployment import promotion_request as promotion_request
from evaluation.deployment import promotion_withdraw as promotion_withdraw
from evaluation.deployment import rollback_request as rollback_request
from evaluation.gate import gate_check as gate_check
from evaluation.lifecycle import fail_unsent_run
from evaluation.lifecycle import generation_run_beat as generation_run_beat
from evaluation.lifecycle import generation_run_begin as generation_run_begin
from evaluation.lifecycle import generation_run_cancel as generation_run_cancel
from evaluation.lifecycle import generation_run_finish as generation_run_finish
from evaluation.lifecycle import generation_run_progress as generation_run_progress
from evaluation.lifecycle import generation_runs_fail_orphans as generation_runs_fail_orphans
from evaluation.lifecycle import generation_runs_reap as generation_runs_reap
from evaluation.models import (
    Evaluation,
    EvaluationState,
    EvaluationSystem,
    GenerationPrompt,
    GenerationRun,
    PromptSource,
)
from evaluation.prompts import MAX_PROMPTS, prompts_from_items, prompts_from_release, prompts_from_upload
from evaluation.results import evaluation_results
from evaluation.scoring_runs import scoring_run_beat as scoring_run_beat
from evaluation.scoring_runs import scoring_run_begin as scoring_run_begin
from evaluation.scoring_runs import scoring_run_cancel as scoring_run_cancel
from evaluation.scoring_runs import scoring_run_finish as scoring_run_finish
from evaluation.scoring_runs import scoring_run_progress as scoring_run_progress
from evaluation.scoring_runs import scoring_run_start as scoring_run_start
from evaluation.scoring_runs import scoring_runs_fail_orphans as scoring_runs_fail_orphans
from evaluation.scoring_runs import scoring_runs_reap as scoring_runs_reap
from releases import splits
from releases.models import Release
from training.models import Adapter, BaseModel, BaseModelState

ROLES = {"system", "user", "assistant", "tool"}


def policy_check(*, project: Project, base_model: BaseModel, adapter: Adapter | None) -> None:
    """Refuse a policy that cannot generate now, naming the reason: a base model that is not ready, an adapter
    of another project, or one trained on another base model (or on this one's earlier files)."""
    if base_model.state != BaseModelState.READY:
        detail = f": {base_model.failure_reason.rstrip('.')}" if base_model.failure_reason else ""
        raise DomainError(
            f"The base model {base_model} is not ready ({base_model.get_state_display().lower()}){detail}.",
            field="base_model",
        )
    if adapter is None:
        return
    if adapter.project_id != project.pk:
        raise DomainError("That adapter belongs to another project.", field="adapter")
    if adapter.base_model_id != base_model.pk:
        raise DomainError(
            f"The adapter {adapter} was trained on {adapter.base_model}, not on {base_model}; choose its base model.",
            field="adapter",
        )
    if adapter.base_model_hash != base_model.content_hash:
        raise DomainError(
            f"The base model {base_model} has changed since {adapter} was trained on it (hash "
            f"{adapter.base_model_hash[:12]}… then, {base_model.content_hash[:12]}… now).",
            field="adapter",
        )


def _clean_prompts(prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not prompts:
        raise DomainError("A generation run needs at least one prompt.", field="prompts")
    if len(prompts) > MAX_PROMPTS:
        raise DomainError(f"A run answers at most {MAX_PROMPTS:,} prompts, not {len(prompts):,}.", field="prompts")
    clean = []
    for number, prompt in enumerate(prompts, start=1):
        messages = prompt.get("messages")
        if not isinstance(messages, list) or not messages:
            raise DomainError(f"Prompt {number} has no messages.", field="prompts")
        for message in messages:
            if not (
                isinstance(message, dict) and message.get("role") in ROLES and isinstance(message.get("content"), str)
            ):
                raise DomainError(f"Prompt {number} has a message without a known role and text.", field="prompts")
        if messages[-1]["role"] == "assistant":
            raise DomainError(f"Prompt {number} ends with an answer; nothing is left to generate.", field="prompts")
        clean.append(
            {
                "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
                "metadata": dict(prompt.get("metadata") or {}),
                "external_id": str(prompt.get("external_id") or "")[:200],
                "item_id": prompt.get("item_id"),
            }
        )
    return clean


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
    """Define a run of a policy (``base_model``, optionally with ``adapter``) over ``prompts`` (already
    scrubbed: ``{"messages", "metadata", "external_id", "item_id"}``) and queue it on the gpu queue once
    committed. The model hash and adapter sha256 are copied onto the run. Raises ``DomainError`` before
    writing anything: a policy that cannot generate (``policy_check``), bad decoding settings, an unknown
    source, no prompts or a malformed one."""
    from evaluation.tasks import generation_run_task

    if source not in PromptSource.values:
        raise DomainError(f"Unknown prompt source “{source}”.", field="source")
    policy_check(project=project, base_model=base_model, adapter=adapter)
    settings = Decoding.from_input(decoding)
    rows = _clean_prompts(prompts)
    if release is not None and release.project_id != project.pk:
        raise DomainError("That release belongs to another project.", field="release")
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        run = GenerationRun.objects.create(
            project=project, base_model=base_model, adapter=adapter, base_model_hash=base_model.content_hash,
            adapter_sha256=adapter.sha256 if adapter else "", source=source, release=release,
            source_name=source_name[:255], decoding=settings.as_dict(), evaluation=evaluation,
            prompt_count=len(rows), created_by=actor, task_id=task_id,
        )  # fmt: skip
        GenerationPrompt.objects.bulk_create(
            [
                GenerationPrompt(
                    run=run, index=index, messages=row["messages"], metadata=row["metadata"],
                    external_id=row["external_id"], item_id=row["item_id"],
                    digest=splits.digest(splits.normalise(splits.prompt_text(row["messages"]))),
                )
                for index, row in enumerate(rows)
            ],
            batch_size=1000,
        )  # fmt: skip
        audit_event_record(
            actor=actor,
            action="evaluation.generation_start",
            target=run,
            project=project,
            payload={
                "base_model": base_model.pk,
                "base_model_hash": run.base_model_hash,
                "adapter": adapter.pk if adapter else None,
                "adapter_sha256": run.adapter_sha256,
                "source": source,
                "release": release.pk if release else None,
                "source_name": run.source_name,
                "prompts": len(rows),
                "decoding": run.decoding,
                "evaluation": evaluation.pk if evaluation else None,
            },
        )
        send_on_commit(
            lambda: generation_run_task.apply_async(args=(run.pk,), task_id=task_id),
            what=f"generation run #{run.pk}",
            on_refused=lambda reason: fail_unsent_run(run.pk, reason),
        )
    run.refresh_from_db()
    return run


def generation_run_start(
    *,
    actor: User,
    project: Project,
    base_model: BaseModel,
    adapter: Adapter | None,
    source: str,
    decoding: dict[str, Any],
    release: Release | None = None,
    limit: int | None = None,
    upload: IO[bytes] | None = None,
    fmt: str = "",
    source_name: str = "",
) -> GenerationRun:
    """What the run form and the API start: the prompts read from ``source`` (a release's held-out split, the
    project's first ``limit`` imported items, or an uploaded file), then ``generation_run_create``. The policy
    and the decoding are checked before any prompt is read. Raises ``DomainError``; nothing is written then."""
    policy_check(project=project, base_model=base_model, adapter=adapter)
    Decoding.from_input(decoding)
    if source == PromptSource.RELEASE_EVAL:
        if release is None:
            raise DomainError("Choose the release whose held-out split to answer.", field="release")
        prompts = prompts_from_release(project=project, release=release)
    elif source == PromptSource.PROJECT_ITEMS:
        prompts = prompts_from_items(project=project, limit=limit or MAX_PROMPTS)
        release = None
    elif source == PromptSource.UPLOAD:
        if upload is None:
            raise DomainError("Choose the prompt file to upload.", field="file")
        prompts = prompts_from_upload(project=project, upload=upload, fmt=fmt, source_name=source_name)
        release = None
    else:
        raise DomainError(f"Unknown prompt source “{source}”.", field="source")
    return generation_run_create(
        actor=actor, project=project, base_model=base_model, adapter=adapter, source=source, prompts=prompts,
        decoding=decoding, release=release, source_name=source_name if source == PromptSource.UPLOAD else "",
    )  # fmt: skip


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
        evaluation = judging_project.locked(evaluation_id)
        if evaluation.state != EvaluationState.GENERATING:
            return evaluation
        reason = judging_project.run_failure(evaluation)
        if reason is not None:
            return judging_project.evaluation_fail(evaluation=evaluation, reason=reason)
        if not judging_project.all_runs_succeeded(evaluation):
            return evaluation
        return judging_project.evaluation_judging_open(evaluation=evaluation)


def evaluation_finish(*, actor: User, evaluation: Evaluation) -> Evaluation:
    """Freeze the evaluation's figures into ``results`` (what the promotion gate reads) and finish it. Raises
    ``DomainError`` when it is not being judged or has no judgement yet. Audited as ``evaluation.finish``."""
    with transaction.atomic():
        evaluation = judging_project.locked(evaluation.pk)
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
        followups.ended("evaluation", evaluation.pk)
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
