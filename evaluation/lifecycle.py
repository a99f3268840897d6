"""A generation run's life on its gpu worker, as ``training.lifecycle`` is a training job's: taken and marked
running, its scrubbed candidates and heartbeat while it generates, its end (succeeded, failed, cancelled), the
reaper that fails runs whose worker went silent, and a restarted worker's orphans. Starts and ends are
audited; progress and heartbeats are not. A run that belongs to a blind evaluation tells it, once the end is
committed, through the task ``evaluation.evaluation_advance`` (sent by name: this module does not import it)."""

import logging
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_event_record
from core import followups
from core.dispatch import BrokerUnreachable, reach_broker
from core.errors import DomainError
from evaluation.models import Candidate, GenerationPrompt, GenerationRun
from training.lifecycle import fail_orphans, reap_silent
from training.models import JobState

logger = logging.getLogger(__name__)

ADVANCE_TASK = "evaluation.evaluation_advance"
ENDED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def generation_run_begin(*, run_id: int, worker: str, environment: dict[str, Any]) -> GenerationRun | None:
    """On the worker: take a queued run and mark it running. ``None`` when there is nothing to run (cancelled
    while queued, ended, or running under a supervisor that still beats); a running run with a stale heartbeat
    delivered again is failed as "worker lost", never generated twice."""
    with transaction.atomic():
        run = (
            GenerationRun.objects.select_for_update(of=("self",)).filter(pk=run_id).select_related("base_model").first()
        )
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
        run.code_version = str(environment.get("code_version", ""))[:64]
        run.phase = "preparing"
        run.save(
            update_fields=["state", "started_at", "heartbeat_at", "worker", "environment", "code_version", "phase"]
        )
        audit_event_record(
            actor=None, action="evaluation.generation_running", target=run, project=run.project,
            payload={"worker": worker},
        )  # fmt: skip
    return run


def generation_run_progress(
    *,
    run: GenerationRun,
    candidates: list[dict[str, Any]],
    prompts_done: int | None = None,
    phase: str | None = None,
    child_pid: int | None = None,
) -> bool:
    """On the worker, about twice a second: store new candidates (already scrubbed: ``text`` and
    ``scrub_counts`` as the scrubber left them; ``index`` is the prompt's), add their tokens, time and scrubbed
    values to the run's totals, beat, and answer whether to stop (a cancel was asked for, or the run ended)."""
    with transaction.atomic():
        locked = GenerationRun.objects.select_for_update().get(pk=run.pk)
        if locked.state != JobState.RUNNING:
            return True
        if candidates:
            prompt_ids = dict(
                GenerationPrompt.objects.filter(run=locked, index__in={c["index"] for c in candidates}).values_list(
                    "index", "pk"
                )
            )
            now = timezone.now()
            Candidate.objects.bulk_create(
                [
                    Candidate(
                        run=locked, prompt_id=prompt_ids[c["index"]], sample=c["sample"], text=c["text"],
                        seed=c["seed"], prompt_tokens=c["prompt_tokens"], completion_tokens=c["completion_tokens"],
                        seconds=c["seconds"], finish_reason=c["finish_reason"], scrub_counts=c["scrub_counts"],
                        created_at=now,
                    )
                    for c in candidates
                ]
            )  # fmt: skip
            totals = dict(locked.scrub_counts or {})
            for candidate in candidates:
                for kind, count in candidate["scrub_counts"].items():
                    totals[kind] = int(totals.get(kind, 0)) + int(count)
            locked.scrub_counts = totals
            locked.completion_tokens += sum(int(c["completion_tokens"]) for c in candidates)
            locked.generation_seconds += sum(float(c["seconds"]) for c in candidates)
        if prompts_done is not None:
            locked.prompts_done = min(prompts_done, locked.prompt_count)
        if phase is not None:
            locked.phase = phase[:100]
        if child_pid is not None:
            locked.child_pid = child_pid
        locked.heartbeat_at = timezone.now()
        locked.save(
            update_fields=[
                "scrub_counts", "completion_tokens", "generation_seconds", "prompts_done", "phase", "child_pid",
                "heartbeat_at",
            ]
        )  # fmt: skip
        return locked.cancel_requested_at is not None


def generation_run_beat(*, run_id: int) -> None:
    """The worker is alive and still on this run (between pumps: staging the adapter, loading the model)."""
    GenerationRun.objects.filter(pk=run_id, state=JobState.RUNNING).update(heartbeat_at=timezone.now())


def generation_run_finish(
    *, run: GenerationRun, state: str, reason: str = "", result: dict[str, Any] | None = None
) -> GenerationRun:
    """On the worker: the run ended. ``succeeded`` needs every prompt's candidates stored (else it fails with
    the count); ``failed`` and ``cancelled`` keep the reason; ``result`` (the child's timings and network
    record) goes into the run's environment. A run that already ended is left as it is."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update(of=("self",)).select_related("project").get(pk=run.pk)
        if run.state != JobState.RUNNING:
            return run
        if result:
            network = result.pop("network", {})
            run.environment = {**run.environment, "network": network, "result": result}
            run.save(update_fields=["environment"])
        if state == JobState.SUCCEEDED:
            expected = run.prompt_count * int(run.decoding["candidates"])
            stored = Candidate.objects.filter(run=run).count()
            if stored != expected:
                state, reason = JobState.FAILED, f"The run stored {stored} candidates of {expected}."
            else:
                run.prompts_done = run.prompt_count
        _end(run, state, reason)
    return run


def _end(run: GenerationRun, state: str, reason: str) -> None:
    """End a locked run with ``state`` and the reason, audit it, and tell its evaluation once committed."""
    run.state = state
    run.failure_reason = reason[:8000]
    run.finished_at = timezone.now()
    run.phase = ""
    run.save(update_fields=["state", "failure_reason", "finished_at", "phase", "prompts_done"])
    action = {
        str(JobState.SUCCEEDED): "evaluation.generation_succeeded",
        str(JobState.CANCELLED): "evaluation.generation_cancelled",
    }.get(state, "evaluation.generation_fail")
    payload: dict[str, Any] = {"reason": reason[:2000]} if reason else {}
    if state == JobState.SUCCEEDED:
        payload = {"candidates": run.prompt_count * int(run.decoding["candidates"]), "scrubbed": run.scrub_counts}
    audit_event_record(actor=None, action=action, target=run, project=run.project, payload=payload)
    followups.ended("generation_run", run.pk)
    if run.evaluation_id is not None:
        evaluation_id = run.evaluation_id
        transaction.on_commit(lambda: _advance_evaluation(evaluation_id))


def _advance_evaluation(evaluation_id: int) -> None:
    try:
        reach_broker(lambda: current_app.send_task(ADVANCE_TASK, kwargs={"evaluation_id": evaluation_id}))
    except BrokerUnreachable:
        logger.warning("evaluation %s not advanced: the broker is away", evaluation_id)


def generation_run_cancel(*, actor: User, run: GenerationRun) -> GenerationRun:
    """A queued run is cancelled at once; a running one is asked to stop, and its worker ends the generating
    process within a second or two (the candidates stored so far are kept). Raises ``DomainError`` (409) for a
    run that has already ended."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update(of=("self",)).select_related("project").get(pk=run.pk)
        if run.state in ENDED:
            raise DomainError(f"{run} has already ended ({run.get_state_display().lower()}).", status=409)
        run.cancel_requested_at = run.cancel_requested_at or timezone.now()
        run.cancel_requested_by = run.cancel_requested_by or actor
        run.save(update_fields=["cancel_requested_at", "cancel_requested_by"])
        audit_event_record(
            actor=actor, action="evaluation.generation_cancel", target=run, project=run.project,
            payload={"state": run.state},
        )  # fmt: skip
        if run.state == JobState.QUEUED:
            _end(run, JobState.CANCELLED, f"Cancelled by {actor.username} before it started.")
    return run


def fail_unsent_run(run_id: int, reason: str) -> None:
    """The run's task never reached the broker: fail it with the reason rather than leave it queued."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(pk=run_id)
        if run.state == JobState.QUEUED:
            _end(run, JobState.FAILED, reason)


def generation_runs_reap(*, now: Any = None) -> list[int]:
    """Fail running runs whose worker stopped beating (``TRAINING_HEARTBEAT_TIMEOUT``) as "worker lost";
    returns their ids. Runs with the training reaper (``enclave.periodic``) and when the run pages list runs."""
    return reap_silent(GenerationRun, _fail, worker_lost_reason, now=now)


def generation_runs_fail_orphans(*, worker: str) -> list[int]:
    """A gpu worker that starts fails the runs it was running when it stopped: nobody supervises them now."""
    return fail_orphans(GenerationRun, worker, _fail, worker_lost_reason, "it restarted while this run generated.")


def _fail(run: GenerationRun, reason: str) -> None:
    _end(run, JobState.FAILED, reason)


def worker_lost_reason(run: GenerationRun, what_happened: str) -> str:
    return (
        f"Worker lost: the gpu worker {run.worker or '(unknown)'} stopped supervising this run: {what_happened} "
        "The candidates stored so far are kept; start a new run for a complete set."
    )
