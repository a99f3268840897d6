"""A training job's life on its gpu worker: taken and marked running, its metrics, log lines and heartbeat
while it trains, and its end (failed, cancelled, or succeeded with its adapter and lineage); the reaper
that fails jobs whose worker went silent, and a restarted worker's orphans. Every start and end is
audited; progress and heartbeats change no data worth an event."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone

from accounts.services import audit_event_record
from core import followups
from core.errors import DomainError
from training.inspection import tokenizer_hash
from training.models import Adapter, JobKind, JobLogLine, JobMetric, JobState, RewardModel, TrainingJob
from training.tracking import mlflow_log_queue


def training_job_begin(*, job_id: int, worker: str, environment: dict[str, Any]) -> TrainingJob | None:
    """On the worker: take a queued job and mark it running. Returns ``None`` when there is nothing to run
    (cancelled while queued, or already ended, or running under a supervisor that still beats). The task is
    acknowledged on receipt (``training.tasks``), so it is not delivered again when its worker dies; should a
    message come twice anyway (a requeue by hand, a broker restored from a backup), a running job whose
    heartbeat is stale is failed as "worker lost", never silently trained again."""
    with transaction.atomic():
        job = (
            TrainingJob.objects.select_for_update(of=("self",))
            .filter(pk=job_id)
            .select_related("release", "base_model")
            .first()
        )
        if job is None or job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
            return None
        if job.state == JobState.RUNNING:
            fresh = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
            if job.heartbeat_at is not None and job.heartbeat_at >= fresh:
                return None  # its supervisor is alive (a task delivered twice): leave the job to it
            _fail(job, worker_lost_reason(job, "its task was delivered again while it was marked running."))
            return None
        now = timezone.now()
        job.state = JobState.RUNNING
        job.started_at = now
        job.heartbeat_at = now
        job.worker = worker[:200]
        job.environment = {
            **environment,
            "inputs": {"release_hash": job.release.hash, "base_model_hash": job.base_model.content_hash},
        }
        job.phase = "preparing data"
        job.save(update_fields=["state", "started_at", "heartbeat_at", "worker", "environment", "phase"])
        audit_event_record(
            actor=None, action="training.job_running", target=job, project=job.project, payload={"worker": worker}
        )
    return job


def training_job_progress(
    *,
    job: TrainingJob,
    metrics: list[dict[str, Any]],
    log_lines: list[str],
    log_seq: int = 0,
    total_steps: int | None = None,
    phase: str | None = None,
    child_pid: int | None = None,
) -> bool:
    """On the worker, about twice a second: store new metrics and log lines, beat, and answer whether to
    stop (a cancel was asked for, or the job already ended). ``log_seq`` numbers the first of
    ``log_lines``. Not audited (no state change): the job's start and end are."""
    now = timezone.now()
    if metrics:
        JobMetric.objects.bulk_create(
            [
                JobMetric(
                    job=job,
                    step=m["step"],
                    phase=m.get("phase", "train"),
                    epoch=m.get("epoch"),
                    values=m["values"],
                    logged_at=now,
                )
                for m in metrics
            ]
        )
    if log_lines:
        JobLogLine.objects.bulk_create(
            [JobLogLine(job=job, seq=log_seq + n, line=line[:4000], logged_at=now) for n, line in enumerate(log_lines)]
        )
    changes: dict[str, Any] = {"heartbeat_at": now}
    steps = [m["step"] for m in metrics if m.get("phase") == "train"]
    if steps:
        changes["step"] = max(steps)
    if total_steps is not None:
        changes["total_steps"] = total_steps
    if phase is not None:
        changes["phase"] = phase[:100]
    if child_pid is not None:
        changes["child_pid"] = child_pid
    TrainingJob.objects.filter(pk=job.pk, state=JobState.RUNNING).update(**changes)
    # Stop when asked to, and also when the job ended behind the supervisor's back (failed by the reaper
    # while this worker could not reach the database): nobody would record what the child trains.
    return (
        TrainingJob.objects.filter(pk=job.pk)
        .filter(Q(cancel_requested_at__isnull=False) | ~Q(state=JobState.RUNNING))
        .exists()
    )


def training_job_beat(*, job_id: int) -> None:
    """The worker is alive and still on this job (between pumps: staging data, storing the adapter)."""
    TrainingJob.objects.filter(pk=job_id, state=JobState.RUNNING).update(heartbeat_at=timezone.now())


def _end(job: TrainingJob, state: str, reason: str) -> None:
    """End a locked, running job as failed or cancelled, with the reason, and audit it."""
    job.state = state
    job.failure_reason = reason[:8000]
    job.finished_at = timezone.now()
    job.phase = ""
    job.save(update_fields=["state", "failure_reason", "finished_at", "phase"])
    action = "training.job_cancelled" if state == JobState.CANCELLED else "training.job_fail"
    mlflow = {"mlflow": "queued"} if mlflow_log_queue(job) else {}
    audit_event_record(
        actor=None, action=action, target=job, project=job.project, payload={"reason": reason[:2000], **mlflow}
    )
    followups.ended("training_job", job.pk)


def fail_unsent_job(job_id: int, reason: str) -> None:
    """The job's task never reached the broker: fail it with the reason rather than leave it queued."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job_id)
        if job.state == JobState.QUEUED:
            _fail(job, reason)


def _fail(job: TrainingJob, reason: str) -> None:
    _end(job, JobState.FAILED, reason)


def training_job_finish(
    *, job: TrainingJob, state: str, reason: str = "", evaluation: dict[str, Any] | None = None
) -> TrainingJob:
    """On the worker: the job ended as ``failed`` or ``cancelled`` (success goes through ``trained_register``)."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if job.state != JobState.RUNNING:
            return job
        if evaluation is not None:
            job.evaluation = evaluation
            job.save(update_fields=["evaluation"])
        _end(job, JobState.CANCELLED if state == JobState.CANCELLED else JobState.FAILED, reason)
    return job


def adapter_register(**values: Any) -> Adapter:
    """On the worker, after an SFT or DPO job's adapter files are in the artifact store (``trained_register``)."""
    adapter = trained_register(**values)
    assert isinstance(adapter, Adapter)
    return adapter


def reward_model_register(**values: Any) -> RewardModel:
    """On the worker, after a reward job's adapter and score head are in the artifact store (``trained_register``)."""
    reward_model = trained_register(**values)
    assert isinstance(reward_model, RewardModel)
    return reward_model


def trained_register(
    *,
    job: TrainingJob,
    storage_prefix: str,
    files: list[dict[str, Any]],
    result: dict[str, Any],
    hardware: dict[str, Any],
    library_versions: dict[str, str],
    code_version: str,
) -> Adapter | RewardModel:
    """On the worker, after what the job trained is in the artifact store: the ``Adapter`` (SFT, DPO) or the
    ``RewardModel`` (reward) with its lineage, and the job succeeds. Raises ``DomainError`` if the weights file
    is missing from ``files``, the base model's files changed while it trained, or the job is no longer running
    (failed as lost meanwhile)."""
    weights = next((f for f in files if f["path"] == "adapter_model.safetensors"), None)
    if weights is None:
        raise DomainError("The training process saved no adapter_model.safetensors.")
    with transaction.atomic():
        job = (
            TrainingJob.objects.select_for_update(of=("self",))
            .select_related("release", "base_model", "project")
            .get(pk=job.pk)
        )
        if job.state != JobState.RUNNING:
            raise DomainError(f"{job} already ended as {job.state}; what it trained is not registered.")
        started_with = job.environment.get("inputs", {}).get("base_model_hash", job.base_model.content_hash)
        if job.base_model.content_hash != started_with:
            raise DomainError(
                f"The base model {job.base_model} was checked again while the job ran and its hash changed "
                f"({started_with[:12]}… → {job.base_model.content_hash[:12]}…); not registering what it trained."
            )
        finished = timezone.now()
        release = job.release
        what = "reward model" if job.kind == JobKind.REWARD else job.kind.upper()
        lineage: dict[str, Any] = {
            "job": job,
            "project": job.project,
            "name": f"{job.base_model.name} + {release.name} v{release.version} ({what}, job #{job.pk})",
            "storage_prefix": storage_prefix,
            "sha256": weights["sha256"],
            "size_bytes": sum(int(f["size_bytes"]) for f in files),
            "files": files,
            "release": release,
            "release_hash": release.hash,
            "base_model": job.base_model,
            "base_model_hash": job.base_model.content_hash,
            "config": job.config,
            "config_hash": job.config_hash,
            "seed": int(job.config["seed"]),
            "library_versions": library_versions,
            "code_version": code_version,
            "hardware": hardware,
            "metrics": {"evaluation": result.get("evaluation", {}), "train": result.get("train", {})},
            "started_at": job.started_at or finished,
            "finished_at": finished,
            "started_by": job.created_by,
        }
        trained: Adapter | RewardModel
        if job.kind == JobKind.REWARD:
            trained = RewardModel.objects.create(**lineage, tokenizer_hash=tokenizer_hash(job.base_model.files))
            action = "training.reward_model_register"
            extra: dict[str, Any] = {"tokenizer_hash": trained.tokenizer_hash}
        else:
            parent = job.parent_adapter
            trained = Adapter.objects.create(**lineage, parent=parent, parent_sha256=parent.sha256 if parent else "")
            action = "training.adapter_register"
            extra = {"parent_adapter": trained.parent_id, "parent_sha256": trained.parent_sha256}
        job.state = JobState.SUCCEEDED
        job.finished_at = finished
        job.phase = ""
        job.evaluation = result.get("evaluation", {})
        job.environment = {**job.environment, "network": result.get("network", {})}
        if job.total_steps:
            job.step = job.total_steps
        job.save(update_fields=["state", "finished_at", "phase", "evaluation", "environment", "step"])
        if mlflow_log_queue(job):
            extra["mlflow"] = "queued"
        audit_event_record(
            actor=None,
            action=action,
            target=trained,
            project=job.project,
            payload={
                "job": job.pk,
                "sha256": trained.sha256,
                "release_hash": trained.release_hash,
                "base_model_hash": trained.base_model_hash,
                "config_hash": trained.config_hash,
                "code_version": code_version,
                **extra,
            },
        )
        followups.ended("training_job", job.pk)
    return trained


def training_jobs_reap(*, now: Any = None) -> list[int]:
    """Fail running jobs whose worker stopped beating (``TRAINING_HEARTBEAT_TIMEOUT``) as "worker lost", with
    their last log lines in the reason; returns the job ids. Runs every ``TRAINING_REAP_INTERVAL`` seconds on
    the default workers (``enclave.periodic``), and when the job pages or the API list jobs."""
    return reap_silent(TrainingJob, _fail, worker_lost_reason, now=now)


def training_jobs_fail_orphans(*, worker: str) -> list[int]:
    """A gpu worker that starts fails the jobs it was running when it stopped: nobody supervises them now."""
    return fail_orphans(TrainingJob, worker, _fail, worker_lost_reason, "it restarted while this job ran.")


Supervised = TypeVar("Supervised", bound=Model)


def reap_silent(
    rows: type[Supervised],
    fail: Callable[[Supervised, str], None],
    lost_reason: Callable[[Supervised, str], str],
    *,
    now: Any = None,
) -> list[int]:
    """Fail the running rows of ``rows`` (training jobs, generation and scoring runs: supervised on a gpu worker,
    with ``state``, ``heartbeat_at`` and ``worker``) whose worker stopped beating for ``TRAINING_HEARTBEAT_TIMEOUT``,
    each locked and checked again, with ``lost_reason(row, what happened)``; returns their ids."""
    now = now or timezone.now()
    limit = settings.TRAINING_HEARTBEAT_TIMEOUT
    cutoff = now - timedelta(seconds=limit)
    manager = rows._default_manager
    failed = []
    for pk in manager.filter(state=JobState.RUNNING, heartbeat_at__lt=cutoff).values_list("pk", flat=True):
        with transaction.atomic():
            row: Any = manager.select_for_update(of=("self",)).select_related("project").get(pk=pk)
            if row.state != JobState.RUNNING or (row.heartbeat_at and row.heartbeat_at >= cutoff):
                continue
            silent = int((now - row.heartbeat_at).total_seconds()) if row.heartbeat_at else 0
            fail(row, lost_reason(row, f"no heartbeat for {silent} s (the limit is {limit} s)."))
            failed.append(int(pk))
    return failed


def fail_orphans(
    rows: type[Supervised],
    worker: str,
    fail: Callable[[Supervised, str], None],
    lost_reason: Callable[[Supervised, str], str],
    what_happened: str,
) -> list[int]:
    """When a gpu worker starts: fail the rows of ``rows`` it was running when it stopped (nobody supervises them
    now), each locked and checked again; returns their ids."""
    manager = rows._default_manager
    failed = []
    for pk in manager.filter(state=JobState.RUNNING, worker=worker).values_list("pk", flat=True):
        with transaction.atomic():
            row: Any = manager.select_for_update(of=("self",)).select_related("project").get(pk=pk)
            if row.state == JobState.RUNNING:
                fail(row, lost_reason(row, what_happened))
                failed.append(int(pk))
    return failed


def worker_lost_reason(job: TrainingJob, what_happened: str) -> str:
    """Why a job whose gpu worker went away failed, in words a person acts on, with its last log lines."""
    return (
        f"Worker lost: the gpu worker {job.worker or '(unknown)'} stopped supervising this job: {what_happened} "
        "The training was stopped and no adapter was registered; start it again with “Run again”."
        f"{last_lines_note(job)}"
    )


def last_lines_note(job: TrainingJob, count: int = 5) -> str:
    lines = list(JobLogLine.objects.filter(job=job).order_by("-seq").values_list("line", flat=True)[:count])
    if not lines:
        return ""
    return " Last log lines:\n" + "\n".join(reversed(lines))
