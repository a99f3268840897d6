"""Writes of the training app: register and validate base models, start, cancel and re-run jobs, the job's
life on the worker (running, heartbeat, metrics, finished), adapters and their lineage, and the reaper that
fails jobs whose worker went silent. Every state change is audited."""

import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from core.dispatch import send_on_commit
from core.errors import DomainError
from releases.models import Release, ReleaseState
from training.config import ALL_LINEAR, JobConfig, preset_values
from training.models import (
    ACTIVE_STATES,
    RELEASE_KIND_FOR_JOB,
    Adapter,
    BaseModel,
    BaseModelState,
    JobLogLine,
    JobMetric,
    JobState,
    TrainingJob,
    TrainingWorker,
)

logger = logging.getLogger(__name__)

# A worker that reported within this long counts as online when deciding which configs can run.
WORKER_FRESH = timedelta(minutes=15)
TRAIN_FILES = {"sft": "trl_sft/train.jsonl", "dpo": "trl_preference/train.jsonl"}
EVAL_FILES = {"sft": "trl_sft/eval.jsonl", "dpo": "trl_preference/eval.jsonl"}


# --- Base models ------------------------------------------------------------------------------------------


def base_model_register(*, actor: User, name: str, path: str, description: str = "") -> BaseModel:
    """Register a local model directory and queue its validation on a gpu worker. Raises ``DomainError`` for
    a taken name, a relative path or one outside ``TRAINING_MODEL_ROOTS``."""
    name = name.strip()
    if not name:
        raise DomainError("Give the model a name.", field="name")
    directory = Path(path.strip())
    if not directory.is_absolute():
        raise DomainError("Give the absolute path of the model directory as the gpu workers see it.", field="path")
    roots = settings.TRAINING_MODEL_ROOTS
    if roots and not any(directory.resolve().is_relative_to(root) for root in roots):
        raise DomainError(f"Models live under {', '.join(map(str, roots))}.", field="path")
    if BaseModel.objects.filter(name=name).exists():
        raise DomainError(f"A base model is already called “{name}”.", field="name")
    with transaction.atomic():
        model = BaseModel.objects.create(
            name=name[:100], path=str(directory), description=description.strip(), registered_by=actor
        )
        audit_event_record(
            actor=actor, action="training.base_model_register", target=model, payload={"name": name, "path": path}
        )
        _queue_check(model)
    model.refresh_from_db()  # validating, or invalid because its check could not be sent
    return model


def base_model_revalidate(*, actor: User, model: BaseModel) -> BaseModel:
    """Check the directory again (after files changed on the volume): the hash is recomputed."""
    with transaction.atomic():
        model.state = BaseModelState.VALIDATING
        model.failure_reason = ""
        model.save(update_fields=["state", "failure_reason"])
        audit_event_record(actor=actor, action="training.base_model_revalidate", target=model, payload={})
        _queue_check(model)
    model.refresh_from_db()  # validating, or invalid because its check could not be sent
    return model


def base_model_validate(*, model_id: int) -> BaseModel:
    """On a gpu worker: inspect the directory and record what it holds, or why it cannot be used."""
    from training.inspection import ModelDirectoryError, inspect_model_directory

    model = BaseModel.objects.get(pk=model_id)
    try:
        facts = inspect_model_directory(Path(model.path))
    except ModelDirectoryError as exc:
        changes: dict[str, Any] = {"state": BaseModelState.INVALID, "failure_reason": str(exc)}
    except Exception as exc:  # an unreadable file, a malformed header: say so rather than validate forever
        logger.exception("base model %s could not be checked", model_id)
        changes = {"state": BaseModelState.INVALID, "failure_reason": f"The check failed: {type(exc).__name__}: {exc}"}
    else:
        changes = {
            "state": BaseModelState.READY,
            "failure_reason": "",
            "architecture": facts.architecture,
            "model_type": facts.model_type,
            "parameter_count": facts.parameter_count,
            "dtype": facts.dtype,
            "linear_modules": facts.linear_modules,
            "content_hash": facts.content_hash,
            "files": facts.files,
        }
    with transaction.atomic():
        changes["validated_at"] = timezone.now()
        BaseModel.objects.filter(pk=model_id).update(**changes)
        model.refresh_from_db()
        audit_event_record(
            actor=None,
            action="training.base_model_validate",
            target=model,
            payload={
                "state": model.state,
                "reason": model.failure_reason,
                "content_hash": model.content_hash,
                "parameters": model.parameter_count,
            },
        )
    return model


# --- Workers ----------------------------------------------------------------------------------------------


def training_worker_report(
    *, hostname: str, devices: list[dict[str, Any]], bitsandbytes: bool, flash_attention: bool, versions: dict[str, str]
) -> TrainingWorker:
    """A gpu worker says what it can run (at start and on every job). Not audited: it changes no data."""
    worker, _ = TrainingWorker.objects.update_or_create(
        hostname=hostname,
        defaults={
            "devices": devices,
            "bitsandbytes": bitsandbytes,
            "versions": {**versions, "flash_attn": "installed" if flash_attention else "not installed"},
            "last_seen_at": timezone.now(),
        },
    )
    return worker


def _online_workers() -> list[TrainingWorker]:
    return list(TrainingWorker.objects.filter(last_seen_at__gte=timezone.now() - WORKER_FRESH))


def _check_hardware(config: JobConfig) -> None:
    if not config.use_qlora:
        return
    with_gpu = [w for w in _online_workers() if w.devices]
    if not any(w.bitsandbytes for w in with_gpu):
        raise DomainError(
            "QLoRA (4-bit) needs a gpu worker with a CUDA GPU and bitsandbytes; "
            + ("no worker with a GPU is online." if not with_gpu else "the online GPU workers have no bitsandbytes."),
            field="use_qlora",
        )


# --- Jobs -------------------------------------------------------------------------------------------------


def job_config_from_input(*, kind: str, preset: str = "", values: dict[str, Any] | None = None) -> JobConfig:
    """A preset's values overlaid with the given ones, validated. Raises ``DomainError``."""
    merged = preset_values(preset, kind) if preset else {}
    merged.update({key: value for key, value in (values or {}).items() if value is not None and value != ""})
    return JobConfig.from_dict(kind, merged)


def training_job_start(
    *,
    actor: User,
    project: Project,
    kind: str,
    release: Release,
    base_model: BaseModel,
    config: JobConfig,
    preset: str = "",
    rerun_of: TrainingJob | None = None,
) -> TrainingJob:
    """Define a job and queue it on the gpu queue. Everything that can be checked before training is checked
    here; raises ``DomainError`` with the reason (wrong release kind or state, base model not ready, a target
    module the model lacks, hardware that no worker has)."""
    from training.tasks import run_training_job

    if kind not in RELEASE_KIND_FOR_JOB:
        raise DomainError("The job kind is sft or dpo.", field="kind")
    if config.kind != kind:
        raise DomainError("The config was made for another job kind.", field="kind")
    if release.project_id != project.pk:
        raise DomainError("That release belongs to another project.", field="release")
    if release.state != ReleaseState.BUILT:
        raise DomainError(
            f"{release} is {release.get_state_display().lower()}; train on a built release.", field="release"
        )
    if release.kind != RELEASE_KIND_FOR_JOB[kind]:
        needed = "an SFT" if kind == "sft" else "a preference"
        raise DomainError(f"A {kind.upper()} job needs {needed} release; {release} is not one.", field="release")
    train_file = release.files.filter(path=TRAIN_FILES[kind]).first()
    if train_file is None or not train_file.rows:
        raise DomainError(f"{release} has no training rows in {TRAIN_FILES[kind]}.", field="release")
    if base_model.state != BaseModelState.READY:
        raise DomainError(
            f"The base model {base_model} is not ready ({base_model.get_state_display().lower()}).", field="base_model"
        )
    missing = [m for m in config.target_modules if m != ALL_LINEAR and m not in base_model.linear_modules]
    if missing:
        raise DomainError(
            f"{base_model} has no module “{missing[0]}”; its linear modules are "
            f"{', '.join(base_model.linear_modules) or 'unknown'}.",
            field="target_modules",
        )
    _check_hardware(config)
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        job = TrainingJob.objects.create(
            project=project,
            kind=kind,
            release=release,
            base_model=base_model,
            config=config.canonical(),
            config_hash=config.hash,
            preset=preset,
            created_by=actor,
            rerun_of=rerun_of,
            task_id=task_id,
        )
        audit_event_record(
            actor=actor,
            action="training.job_start",
            target=job,
            project=project,
            payload={
                "kind": kind,
                "release": release.pk,
                "release_hash": release.hash,
                "base_model": base_model.pk,
                "base_model_hash": base_model.content_hash,
                "config_hash": job.config_hash,
                "config": job.config,
                "rerun_of": rerun_of.pk if rerun_of else None,
            },
        )
        send_on_commit(
            lambda: run_training_job.apply_async(args=(job.pk,), task_id=task_id),
            what=f"training job #{job.pk}",
            on_refused=lambda reason: _fail_unsent_job(job.pk, reason),
        )
    job.refresh_from_db()  # queued, or failed because its task could not be sent
    return job


def training_job_rerun(*, actor: User, job: TrainingJob) -> TrainingJob:
    """A new job with the same release, base model and config (so the same seed)."""
    return training_job_start(
        actor=actor,
        project=job.project,
        kind=job.kind,
        release=job.release,
        base_model=job.base_model,
        config=JobConfig.from_canonical(job.config),
        preset=job.preset,
        rerun_of=job,
    )


def training_job_cancel(*, actor: User, job: TrainingJob) -> TrainingJob:
    """A queued job is cancelled at once; a running one is asked to stop, and its worker ends the training
    process within a second or two. Raises ``DomainError`` for a job that has already ended."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if job.state not in ACTIVE_STATES:
            raise DomainError(f"{job} has already ended ({job.get_state_display().lower()}).")
        now = timezone.now()
        job.cancel_requested_at = job.cancel_requested_at or now
        job.cancel_requested_by = job.cancel_requested_by or actor
        fields = ["cancel_requested_at", "cancel_requested_by"]
        if job.state == JobState.QUEUED:
            job.state = JobState.CANCELLED
            job.finished_at = now
            job.failure_reason = f"Cancelled by {actor.username} before it started."
            fields += ["state", "finished_at", "failure_reason"]
        job.save(update_fields=fields)
        audit_event_record(
            actor=actor,
            action="training.job_cancel",
            target=job,
            project=job.project,
            payload={"state": job.state},
        )
    return job


def training_job_begin(*, job_id: int, worker: str, environment: dict[str, Any]) -> TrainingJob | None:
    """On the worker: take a queued job and mark it running. Returns ``None`` when there is nothing to run
    (cancelled while queued, or already ended, or running under a supervisor that still beats). A running job
    whose heartbeat is stale means the worker that ran it died and the broker delivered the task again:
    that job is failed, never silently re-run."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().filter(pk=job_id).select_related("release", "base_model").first()
        if job is None or job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
            return None
        if job.state == JobState.RUNNING:
            fresh = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
            if job.heartbeat_at is not None and job.heartbeat_at >= fresh:
                return None  # its supervisor is alive (a task delivered twice): leave the job to it
            _fail(
                job,
                f"The worker {job.worker or '(unknown)'} was lost while this job ran (the task came back to the "
                "queue). Start it again with “Run again”.",
            )
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
    audit_event_record(actor=None, action=action, target=job, project=job.project, payload={"reason": reason[:2000]})


def _fail_unsent_job(job_id: int, reason: str) -> None:
    """The job's task never reached the broker: fail it with the reason rather than leave it queued."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job_id)
        if job.state == JobState.QUEUED:
            _fail(job, reason)


def _queue_check(model: BaseModel) -> None:
    """Send the model's check to a gpu worker once the transaction commits."""
    from training.tasks import validate_base_model

    send_on_commit(
        lambda: validate_base_model.delay(model.pk),
        what=f"check of base model #{model.pk}",
        on_refused=lambda reason: _invalidate_unchecked_model(model.pk, reason),
    )


def _invalidate_unchecked_model(model_id: int, reason: str) -> None:
    """The model's check never reached the broker: say so rather than show it "validating" forever."""
    with transaction.atomic():
        model = BaseModel.objects.select_for_update().get(pk=model_id)
        if model.state != BaseModelState.VALIDATING:
            return
        model.state, model.failure_reason = BaseModelState.INVALID, reason
        model.save(update_fields=["state", "failure_reason"])
        audit_event_record(
            actor=None,
            action="training.base_model_validate",
            target=model,
            payload={"state": model.state, "reason": reason, "content_hash": model.content_hash, "parameters": None},
        )


def _fail(job: TrainingJob, reason: str) -> None:
    _end(job, JobState.FAILED, reason)


def training_job_finish(
    *, job: TrainingJob, state: str, reason: str = "", evaluation: dict[str, Any] | None = None
) -> TrainingJob:
    """On the worker: the job ended as ``failed`` or ``cancelled`` (success goes through ``adapter_register``)."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if job.state != JobState.RUNNING:
            return job
        if evaluation is not None:
            job.evaluation = evaluation
            job.save(update_fields=["evaluation"])
        _end(job, JobState.CANCELLED if state == JobState.CANCELLED else JobState.FAILED, reason)
    return job


def adapter_register(
    *,
    job: TrainingJob,
    storage_prefix: str,
    files: list[dict[str, Any]],
    result: dict[str, Any],
    hardware: dict[str, Any],
    library_versions: dict[str, str],
    code_version: str,
) -> Adapter:
    """On the worker, after the adapter's files are in the artifact store: the ``Adapter`` and its lineage,
    and the job succeeds. Raises ``DomainError`` if the weights file is missing from ``files`` or the job is
    no longer running (failed as lost meanwhile)."""
    weights = next((f for f in files if f["path"] == "adapter_model.safetensors"), None)
    if weights is None:
        raise DomainError("The training process saved no adapter_model.safetensors.")
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().select_related("release", "base_model", "project").get(pk=job.pk)
        if job.state != JobState.RUNNING:
            raise DomainError(f"{job} already ended as {job.state}; its adapter is not registered.")
        started_with = job.environment.get("inputs", {}).get("base_model_hash", job.base_model.content_hash)
        if job.base_model.content_hash != started_with:
            raise DomainError(
                f"The base model {job.base_model} was checked again while the job ran and its hash changed "
                f"({started_with[:12]}… → {job.base_model.content_hash[:12]}…); not registering the adapter."
            )
        finished = timezone.now()
        release = job.release
        adapter = Adapter.objects.create(
            job=job,
            project=job.project,
            name=f"{job.base_model.name} + {release.name} v{release.version} ({job.kind.upper()}, job #{job.pk})",
            storage_prefix=storage_prefix,
            sha256=weights["sha256"],
            size_bytes=sum(int(f["size_bytes"]) for f in files),
            files=files,
            release=release,
            release_hash=release.hash,
            base_model=job.base_model,
            base_model_hash=job.base_model.content_hash,
            config=job.config,
            config_hash=job.config_hash,
            seed=int(job.config["seed"]),
            library_versions=library_versions,
            code_version=code_version,
            hardware=hardware,
            metrics={"evaluation": result.get("evaluation", {}), "train": result.get("train", {})},
            started_at=job.started_at or finished,
            finished_at=finished,
            started_by=job.created_by,
        )
        job.state = JobState.SUCCEEDED
        job.finished_at = finished
        job.phase = ""
        job.evaluation = result.get("evaluation", {})
        job.environment = {**job.environment, "network": result.get("network", {})}
        if job.total_steps:
            job.step = job.total_steps
        job.save(update_fields=["state", "finished_at", "phase", "evaluation", "environment", "step"])
        audit_event_record(
            actor=None,
            action="training.adapter_register",
            target=adapter,
            project=job.project,
            payload={
                "job": job.pk,
                "sha256": adapter.sha256,
                "release_hash": adapter.release_hash,
                "base_model_hash": adapter.base_model_hash,
                "config_hash": adapter.config_hash,
                "code_version": code_version,
            },
        )
    return adapter


def training_jobs_reap(*, now: Any = None) -> list[int]:
    """Fail running jobs whose worker stopped beating (``TRAINING_HEARTBEAT_TIMEOUT``), with their last log
    lines in the reason. Called by the job pages, the API and a worker when it starts; returns the job ids."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    failed = []
    for job_id in TrainingJob.objects.filter(state=JobState.RUNNING, heartbeat_at__lt=cutoff).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            job = TrainingJob.objects.select_for_update().get(pk=job_id)
            if job.state != JobState.RUNNING or (job.heartbeat_at and job.heartbeat_at >= cutoff):
                continue
            silent = int((now - job.heartbeat_at).total_seconds()) if job.heartbeat_at else 0
            _fail(
                job,
                f"Lost the worker {job.worker or '(unknown)'}: no heartbeat for {silent} s "
                f"(limit {settings.TRAINING_HEARTBEAT_TIMEOUT} s).{last_lines_note(job)}",
            )
            failed.append(job.pk)
    return failed


def training_jobs_fail_orphans(*, worker: str) -> list[int]:
    """A gpu worker that starts fails the jobs it was running when it stopped: nobody supervises them now."""
    failed = []
    for job in TrainingJob.objects.filter(state=JobState.RUNNING, worker=worker):
        with transaction.atomic():
            locked = TrainingJob.objects.select_for_update().get(pk=job.pk)
            if locked.state == JobState.RUNNING:
                _fail(locked, f"The worker {worker} restarted while this job ran.{last_lines_note(locked)}")
                failed.append(locked.pk)
    return failed


def last_lines_note(job: TrainingJob, count: int = 5) -> str:
    lines = list(JobLogLine.objects.filter(job=job).order_by("-seq").values_list("line", flat=True)[:count])
    if not lines:
        return ""
    return " Last log lines:\n" + "\n".join(reversed(lines))
