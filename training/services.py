"""The use cases of the training app: base models (the registry is ``training.registry``), what the gpu
workers report, and starting, cancelling and re-running jobs; a job's life on its worker and its adapter
are ``training.lifecycle``. Every state change is audited."""

import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from core.dispatch import send_on_commit
from core.errors import DomainError
from core.marks import marks_of
from releases.models import Release, ReleaseState
from training.config import ALL_LINEAR, JobConfig, preset_values
from training.lifecycle import adapter_register as adapter_register
from training.lifecycle import fail_unsent_job
from training.lifecycle import reward_model_register as reward_model_register
from training.lifecycle import trained_register as trained_register
from training.lifecycle import training_job_beat as training_job_beat
from training.lifecycle import training_job_begin as training_job_begin
from training.lifecycle import training_job_finish as training_job_finish
from training.lifecycle import training_job_progress as training_job_progress
from training.lifecycle import training_jobs_fail_orphans as training_jobs_fail_orphans
from training.lifecycle import training_jobs_reap as training_jobs_reap
from training.models import (
    ACTIVE_STATES,
    RELEASE_KIND_FOR_JOB,
    Adapter,
    BaseModel,
    BaseModelState,
    JobState,
    TrainingJob,
    TrainingWorker,
)
from training.registry import base_model_delete as base_model_delete
from training.registry import base_model_register as base_model_register
from training.registry import base_model_revalidate as base_model_revalidate
from training.registry import base_model_update as base_model_update
from training.registry import base_model_validate as base_model_validate
from training.tracking import training_job_mlflow_resend as training_job_mlflow_resend

# A worker that reported within this long counts as online when deciding which configs can run.
WORKER_FRESH = timedelta(minutes=15)
TRAIN_FILES = {"sft": "trl_sft/train.jsonl", "dpo": "trl_preference/train.jsonl"}
EVAL_FILES = {"sft": "trl_sft/eval.jsonl", "dpo": "trl_preference/eval.jsonl"}
for _kind in ("reward", "kto"):  # the same preference pairs
    TRAIN_FILES[_kind], EVAL_FILES[_kind] = TRAIN_FILES["dpo"], EVAL_FILES["dpo"]


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
    parent_adapter: Adapter | None = None,
) -> TrainingJob:
    """Define a job and queue it on the gpu queue. Everything that can be checked before training is checked
    here; raises ``DomainError`` with the reason (wrong release kind or state, base model not ready, a target
    module the model lacks, hardware that no worker has). A DPO job with ``parent_adapter`` continues that
    adapter's LoRA weights (its LoRA shape is the parent's; the DPO reference is the parent, frozen)."""
    from training.tasks import training_job_run_task

    if kind not in RELEASE_KIND_FOR_JOB:
        raise DomainError("The job kind is sft, dpo, reward or kto.", field="kind")
    if config.kind != kind:
        raise DomainError("The config was made for another job kind.", field="kind")
    if release.project_id != project.pk:
        raise DomainError("That release belongs to another project.", field="release")
    if release.state != ReleaseState.BUILT:
        raise DomainError(
            f"{release} is {release.get_state_display().lower()}; train on a built release.", field="release"
        )
    if release.kind != RELEASE_KIND_FOR_JOB[kind]:
        needed = "an SFT release" if kind == "sft" else "a preference release (chosen and rejected answers)"
        what = {"sft": "An SFT", "dpo": "A DPO", "reward": "A reward-model", "kto": "A KTO"}[kind]
        raise DomainError(f"{what} job needs {needed}; {release} is not one.", field="release")
    tainted = marks_of("release", release.pk).get("tainted")
    if tainted:
        erasures = ", ".join(f"#{pk}" for pk in tainted["erasures"])
        raise DomainError(
            f"{release} holds text that erasure {erasures} removed; train on its rebuild without the erased items.",
            field="release",
            status=409,
        )
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
    if parent_adapter is not None:
        parent_check(project=project, kind=kind, base_model=base_model, config=config, parent=parent_adapter)
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
            parent_adapter=parent_adapter,
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
                "parent_adapter": parent_adapter.pk if parent_adapter else None,
                "parent_sha256": parent_adapter.sha256 if parent_adapter else None,
            },
        )
        send_on_commit(
            lambda: training_job_run_task.apply_async(args=(job.pk,), task_id=task_id),
            what=f"training job #{job.pk}",
            on_refused=lambda reason: fail_unsent_job(job.pk, reason),
        )
    job.refresh_from_db()  # queued, or failed because its task could not be sent
    return job


LORA_SHAPE = ("lora_r", "lora_alpha", "target_modules", "use_dora", "use_qlora")


def parent_check(*, project: Project, kind: str, base_model: BaseModel, config: JobConfig, parent: Adapter) -> None:
    """Refuse continuing ``parent`` where its weights cannot go on: not a DPO job, another project or base model
    (or this one's files changed since), or a LoRA shape other than the parent's (``config_continuing``)."""
    if kind != "dpo":
        raise DomainError("Only a DPO job continues an adapter's weights.", field="parent_adapter")
    if parent.project_id != project.pk:
        raise DomainError("That adapter belongs to another project.", field="parent_adapter")
    if parent.base_model_id != base_model.pk or parent.base_model_hash != base_model.content_hash:
        raise DomainError(
            f"{parent} was trained on {parent.base_model} as it was then; continue it on the same base model files.",
            field="parent_adapter",
        )
    canonical = config.canonical()
    for name in LORA_SHAPE:
        if canonical.get(name) != parent.config.get(name):
            raise DomainError(
                f"A continued adapter keeps its parent's LoRA shape: {name} is {parent.config.get(name)!r} in "
                f"{parent}, {canonical.get(name)!r} here.",
                field=name,
            )


def config_continuing(config: JobConfig, parent: Adapter) -> JobConfig:
    """``config`` with the parent adapter's LoRA shape (rank, alpha, target modules, DoRA, QLoRA)."""
    values = {k: v for k, v in config.canonical().items() if k != "kind"}
    values.update({name: parent.config[name] for name in LORA_SHAPE if name in parent.config})
    return JobConfig.from_dict(config.kind, values)


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
        parent_adapter=job.parent_adapter,
    )


def training_job_cancel(*, actor: User, job: TrainingJob) -> TrainingJob:
    """A queued job is cancelled at once; a running one is asked to stop, and its worker ends the training
    process within a second or two. Raises ``DomainError`` for a job that has already ended."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if job.state not in ACTIVE_STATES:
            raise DomainError(f"{job} has already ended ({job.get_state_display().lower()}).", status=409)
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
