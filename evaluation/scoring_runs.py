"""Scoring runs: a reward model scores answers on the gpu queue, supervised like a generation run.

The scope is every candidate of a succeeded generation run of the project, or every candidate of the project's
comparison items. ``scoring_run_start`` checks and queues a run; the rest is its life on the worker, as
``evaluation.lifecycle`` is a generation run's: begin, progress (the scores the supervisor pumps in, stored in
bulk, once per reward model and answer), beat, finish, the reaper, a restarted worker's orphans and cancel.
Starts, cancels and ends are audited; an end is announced to the floors above (``core.followups``).
Scores are for admins and the pair policy: no annotator page or API reads them."""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation.models import Item
from core import followups
from core.dispatch import send_on_commit
from core.errors import DomainError
from evaluation.models import Candidate, GenerationRun, RewardScore, ScoringRun, ScoringScope
from training.inspection import tokenizer_hash
from training.lifecycle import fail_orphans, reap_silent
from training.models import BaseModelState, JobState, RewardModel

ENDED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
MAX_BATCH_SIZE = 256


@dataclass(frozen=True)
class Answer:
    """One answer to score: a generation ``candidate`` (its id), or candidate ``index`` of comparison ``item``;
    ``messages`` is the conversation up to the answer and the answer itself as the last message."""

    messages: list[dict[str, str]]
    candidate: int | None = None
    item: int | None = None
    index: int | None = None

    def as_line(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "item": self.item, "index": self.index, "messages": self.messages}


def _conversation(messages: list[dict[str, Any]], answer: str) -> list[dict[str, str]]:
    prompt = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    return [*prompt, {"role": "assistant", "content": answer}]


def answers_of(run: ScoringRun) -> list[Answer]:
    """The answers of the run's scope that its reward model has not scored yet, in a stable order."""
    if run.scope == ScoringScope.GENERATION_RUN:
        mine = RewardScore.objects.filter(reward_model_id=run.reward_model_id)
        scored = mine.filter(candidate__run_id=run.generation_run_id)
        done = set(scored.values_list("candidate_id", flat=True))
        rows = (
            Candidate.objects.filter(run_id=run.generation_run_id)
            .order_by("prompt__index", "sample")
            .values_list("pk", "prompt__messages", "text")
        )
        return [Answer(messages=_conversation(m, text), candidate=pk) for pk, m, text in rows if pk not in done]
    pairs = RewardScore.objects.filter(reward_model_id=run.reward_model_id, item__project_id=run.project_id)
    done_items = set(pairs.values_list("item_id", "candidate_index"))
    answers = []
    items = Item.objects.filter(project_id=run.project_id, kind="comparison").order_by("pk")
    for pk, messages, candidates in items.values_list("pk", "messages", "candidates"):
        for index, candidate in enumerate(candidates or []):
            if (pk, index) not in done_items:
                answers.append(
                    Answer(messages=_conversation(messages, str(candidate.get("content", ""))), item=pk, index=index)
                )
    return answers


def _reward_model_check(*, project: Project, reward_model: RewardModel) -> None:
    if reward_model.project_id != project.pk:
        raise DomainError("No such reward model in this project.", field="reward_model", status=404)
    base = reward_model.base_model
    if base.state != BaseModelState.READY:
        raise DomainError(
            f"The base model {base} of the reward model {reward_model} is not ready "
            f"({base.get_state_display().lower()}).",
            field="reward_model",
        )
    if base.content_hash != reward_model.base_model_hash:
        raise DomainError(
            f"The base model {base} has changed since the reward model {reward_model} was trained on it.",
            field="reward_model",
        )


def _generation_run_check(*, project: Project, reward_model: RewardModel, run: GenerationRun) -> None:
    if run.project_id != project.pk:
        raise DomainError("That generation run belongs to another project.", field="generation_run", status=404)
    if run.state != JobState.SUCCEEDED:
        raise DomainError(
            f"{run} has not succeeded ({run.get_state_display().lower()}); score a finished run.",
            field="generation_run",
        )
    policy_model = run.adapter.base_model if run.adapter_id and run.adapter else run.base_model
    if tokenizer_hash(policy_model.files) != reward_model.tokenizer_hash:
        raise DomainError(
            f"The reward model {reward_model} reads text with the tokenizer of {reward_model.base_model}, and the "
            f"answers of {run} were written with the tokenizer of {policy_model}; the two differ, so its scores "
            "would mean nothing. Choose a reward model trained on a base model with the same tokenizer.",
            field="reward_model",
        )


def scoring_run_start(
    *,
    actor: User,
    project: Project,
    reward_model: RewardModel,
    generation_run: GenerationRun | None = None,
    batch_size: int = 8,
) -> ScoringRun:
    """Define a scoring run of ``reward_model`` over ``generation_run``'s candidates (None: every candidate of the
    project's comparison items) and queue it on the gpu queue once committed; the reward model's sha256 is copied
    onto the run. Answers this reward model already scored are left out. Raises ``DomainError`` (field named)
    before writing anything: a reward model of another project (404) or whose base model is not ready or
    changed, a generation run of another project (404) or not succeeded, or written with another tokenizer than
    the reward model's, a batch size out of range, or nothing to score."""
    from evaluation.tasks import scoring_run_task

    _reward_model_check(project=project, reward_model=reward_model)
    if generation_run is not None:
        _generation_run_check(project=project, reward_model=reward_model, run=generation_run)
    if not 1 <= int(batch_size) <= MAX_BATCH_SIZE:
        raise DomainError(f"The batch size is from 1 to {MAX_BATCH_SIZE}, not {batch_size}.", field="batch_size")
    scope = ScoringScope.GENERATION_RUN if generation_run is not None else ScoringScope.COMPARISONS
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        run = ScoringRun(
            project=project, reward_model=reward_model, reward_model_sha256=reward_model.sha256, scope=scope,
            generation_run=generation_run, batch_size=int(batch_size), created_by=actor, task_id=task_id,
        )  # fmt: skip
        total = len(answers_of(run))
        if total == 0:
            where = f"{generation_run}" if generation_run is not None else "the project's comparisons"
            raise DomainError(
                f"Nothing to score: {where} has no answer that {reward_model} has not scored already.",
                field="generation_run" if generation_run is not None else "reward_model",
            )
        run.total = total
        run.save()
        audit_event_record(
            actor=actor, action="evaluation.scoring_run_start", target=run, project=project,
            payload={
                "reward_model": reward_model.pk, "reward_model_sha256": run.reward_model_sha256, "scope": scope,
                "generation_run": generation_run.pk if generation_run else None, "answers": total,
                "batch_size": run.batch_size,
            },
        )  # fmt: skip
        send_on_commit(
            lambda: scoring_run_task.apply_async(args=(run.pk,), task_id=task_id),
            what=f"scoring run #{run.pk}",
            on_refused=lambda reason: scoring_run_fail_unsent(run.pk, reason),
        )
    return run


def scoring_run_cancel(*, actor: User, run: ScoringRun) -> ScoringRun:
    """A queued run is cancelled at once; a running one is asked to stop, and its worker ends the scoring process
    within a second or two (the scores stored so far are kept). Raises ``DomainError`` (409) for a run that has
    already ended."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update(of=("self",)).select_related("project").get(pk=run.pk)
        if run.state in ENDED:
            raise DomainError(f"{run} has already ended ({run.get_state_display().lower()}).", status=409)
        run.cancel_requested_at = run.cancel_requested_at or timezone.now()
        run.cancel_requested_by = run.cancel_requested_by or actor
        run.save(update_fields=["cancel_requested_at", "cancel_requested_by"])
        audit_event_record(
            actor=actor, action="evaluation.scoring_run_cancel", target=run, project=run.project,
            payload={"state": run.state},
        )  # fmt: skip
        if run.state == JobState.QUEUED:
            _end(run, JobState.CANCELLED, f"Cancelled by {actor.username} before it started.")
    return run


# --- On the worker ------------------------------------------------------------------------------------------------


def scoring_run_begin(*, run_id: int, worker: str, environment: dict[str, Any]) -> ScoringRun | None:
    """On the worker: take a queued run and mark it running. ``None`` when there is nothing to run (cancelled
    while queued, ended, or running under a supervisor that still beats); a running run with a stale heartbeat
    delivered again is failed as "worker lost", never scored twice."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update(of=("self",)).filter(pk=run_id).select_related("project").first()
        if run is None or run.state in ENDED:
            return None
        if run.state == JobState.RUNNING:
            fresh = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
            if run.heartbeat_at is not None and run.heartbeat_at >= fresh:
                return None
            _end(run, JobState.FAILED, worker_lost_reason(run, "its task was delivered again while it ran."))
            return None
        now = timezone.now()
        run.state = JobState.RUNNING
        run.started_at = now
        run.heartbeat_at = now
        run.worker = worker[:200]
        run.environment = environment
        run.phase = "preparing"
        run.save(update_fields=["state", "started_at", "heartbeat_at", "worker", "environment", "phase"])
        audit_event_record(
            actor=None, action="evaluation.scoring_run_running", target=run, project=run.project,
            payload={"worker": worker},
        )  # fmt: skip
    return run


def scoring_run_progress(
    *,
    run: ScoringRun,
    scores: list[dict[str, Any]],
    seconds: float = 0.0,
    total: int | None = None,
    phase: str | None = None,
    child_pid: int | None = None,
) -> bool:
    """On the worker, about twice a second: store new scores (``{"candidate"}`` or ``{"item", "index"}`` with
    ``score``) in bulk, once per reward model and answer (a score already stored is kept; ``done`` counts the
    run's stored scores, so a repeated pump counts nothing twice), add the forward passes' ``seconds``, beat, and
    answer whether to stop (a cancel was asked for, or the run ended)."""
    with transaction.atomic():
        locked = ScoringRun.objects.select_for_update().get(pk=run.pk)
        if locked.state != JobState.RUNNING:
            return True
        if scores:
            RewardScore.objects.bulk_create(
                [
                    RewardScore(
                        run=locked, reward_model_id=locked.reward_model_id, candidate_id=s.get("candidate"),
                        item_id=s.get("item"), candidate_index=s.get("index"), score=float(s["score"]),
                    )
                    for s in scores
                ],
                ignore_conflicts=True,
                batch_size=1000,
            )  # fmt: skip
            locked.done = min(RewardScore.objects.filter(run=locked).count(), locked.total)
        locked.seconds += float(seconds)
        if total is not None:
            locked.total = total
        if phase is not None:
            locked.phase = phase[:100]
        if child_pid is not None:
            locked.child_pid = child_pid
        locked.heartbeat_at = timezone.now()
        locked.save(update_fields=["done", "seconds", "total", "phase", "child_pid", "heartbeat_at"])
        return locked.cancel_requested_at is not None


def scoring_run_beat(*, run_id: int) -> None:
    """The worker is alive and still on this run (between pumps: staging the reward model, loading it)."""
    ScoringRun.objects.filter(pk=run_id, state=JobState.RUNNING).update(heartbeat_at=timezone.now())


def scoring_run_finish(
    *, run: ScoringRun, state: str, reason: str = "", result: dict[str, Any] | None = None
) -> ScoringRun:
    """On the worker: the run ended. ``succeeded`` needs every answer scored (else it fails with the count);
    ``failed`` and ``cancelled`` keep the reason; ``result`` (the child's timings and network record) goes into
    the run's environment. A run that already ended is left as it is."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update(of=("self",)).select_related("project").get(pk=run.pk)
        if run.state != JobState.RUNNING:
            return run
        if result:
            network = result.pop("network", {})
            run.environment = {**run.environment, "network": network, "result": result}
            run.save(update_fields=["environment"])
        if state == JobState.SUCCEEDED and run.done != run.total:
            state, reason = JobState.FAILED, f"The run scored {run.done} answers of {run.total}."
        _end(run, state, reason)
    return run


def _end(run: ScoringRun, state: str, reason: str) -> None:
    """End a locked run with ``state`` and the reason, audit it, and announce the end once committed."""
    run.state = state
    run.failure_reason = reason[:8000]
    run.finished_at = timezone.now()
    run.phase = ""
    run.save(update_fields=["state", "failure_reason", "finished_at", "phase"])
    action = {
        str(JobState.SUCCEEDED): "evaluation.scoring_run_succeeded",
        str(JobState.CANCELLED): "evaluation.scoring_run_cancelled",
    }.get(state, "evaluation.scoring_run_fail")
    payload: dict[str, Any] = {"reason": reason[:2000]} if reason else {"scored": run.done}
    audit_event_record(actor=None, action=action, target=run, project=run.project, payload=payload)
    followups.ended("scoring_run", run.pk)


def scoring_run_fail_unsent(run_id: int, reason: str) -> None:
    """The run's task never reached the broker: fail it with the reason rather than leave it queued."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update(of=("self",)).select_related("project").get(pk=run_id)
        if run.state == JobState.QUEUED:
            _end(run, JobState.FAILED, reason)


def scoring_runs_reap(*, now: Any = None) -> list[int]:
    """Fail running runs whose worker stopped beating (``TRAINING_HEARTBEAT_TIMEOUT``) as "worker lost";
    returns their ids. Runs with the training reaper (``enclave.periodic``) and when the run pages list runs."""
    return reap_silent(ScoringRun, _fail, worker_lost_reason, now=now)


def scoring_runs_fail_orphans(*, worker: str) -> list[int]:
    """A gpu worker that starts fails the runs it was running when it stopped: nobody supervises them now."""
    return fail_orphans(ScoringRun, worker, _fail, worker_lost_reason, "it restarted while this run scored.")


def _fail(run: ScoringRun, reason: str) -> None:
    _end(run, JobState.FAILED, reason)


def worker_lost_reason(run: ScoringRun, what_happened: str) -> str:
    return (
        f"Worker lost: the gpu worker {run.worker or '(unknown)'} stopped supervising this run: {what_happened} "
        "The scores stored so far are kept; a new run scores the rest."
    )
