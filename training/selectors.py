"""Reads of the training app: job lists, a job's metrics and log tail with its ETA, the choices of the job
form, and an adapter's lineage record."""

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse

from accounts.models import Project
from core.marks import marks_of
from releases.models import Release, ReleaseState
from training.models import (
    RELEASE_KIND_FOR_JOB,
    Adapter,
    BaseModel,
    BaseModelState,
    JobLogLine,
    JobMetric,
    JobState,
    MergedModel,
    MergedState,
    RewardModel,
    TrainingJob,
)

LINEAGE_FORMAT = "enclave-adapter-lineage/1"
REWARD_LINEAGE_FORMAT = "enclave-reward-model-lineage/1"


def jobs_of(project: Project) -> QuerySet[TrainingJob]:
    return TrainingJob.objects.filter(project=project).select_related(
        "release", "base_model", "created_by", "adapter", "reward_model", "mlflow_run"
    )


def adapters_of(project: Project) -> QuerySet[Adapter]:
    return Adapter.objects.filter(project=project).select_related("release", "base_model", "job")


def reward_models_of(project: Project) -> QuerySet[RewardModel]:
    return RewardModel.objects.filter(project=project).select_related("release", "base_model", "job")


def ready_base_models() -> QuerySet[BaseModel]:
    return BaseModel.objects.filter(state=BaseModelState.READY)


def trainable_releases(project: Project) -> QuerySet[Release]:
    return Release.objects.filter(
        project=project, state=ReleaseState.BUILT, kind__in=set(RELEASE_KIND_FOR_JOB.values())
    ).order_by("-built_at", "-id")


def job_metrics(job: TrainingJob, *, after: int = 0, limit: int = 5000) -> list[dict[str, Any]]:
    """Logged steps after metric id ``after``, oldest first (the page's charts append them)."""
    rows = JobMetric.objects.filter(job=job, id__gt=after).order_by("id")[:limit]
    return [
        {"id": m.id, "step": m.step, "phase": m.phase, "epoch": m.epoch, "values": m.values, "time": m.logged_at}
        for m in rows
    ]


def job_log_tail(job: TrainingJob, count: int = 30) -> list[str]:
    lines = JobLogLine.objects.filter(job=job).order_by("-seq").values_list("line", flat=True)[:count]
    return list(reversed(list(lines)))


def job_eta_seconds(job: TrainingJob) -> float | None:
    """Seconds left at the pace of the steps logged so far (None before two steps are logged)."""
    if job.state != JobState.RUNNING or not job.total_steps:
        return None
    logged = list(
        JobMetric.objects.filter(job=job, phase="train").order_by("-id").values_list("step", "logged_at")[:50]
    )
    if len(logged) < 2:
        return None
    (last_step, last_at), (first_step, first_at) = logged[0], logged[-1]
    if last_step <= first_step:
        return None
    per_step = (last_at - first_at).total_seconds() / (last_step - first_step)
    return max(0.0, per_step * (job.total_steps - job.step))


def lineage(adapter: Adapter | RewardModel) -> dict[str, Any]:
    """The lineage record of an adapter (or a reward model): what a reviewer needs to say which data, model,
    config and code made it."""
    job = adapter.job
    reward = isinstance(adapter, RewardModel)
    release = adapter.release
    base = adapter.base_model
    record: dict[str, Any] = {
        "format": LINEAGE_FORMAT,
        "reward_model" if reward else "adapter": {
            "id": adapter.pk,
            "name": adapter.name,
            "sha256": adapter.sha256,
            "size_bytes": adapter.size_bytes,
            "files": adapter.files,
            "storage_prefix": adapter.storage_prefix,
        },
        "job": {
            "id": job.pk,
            "kind": job.kind,
            "started_by": adapter.started_by.username,
            "started_at": adapter.started_at.isoformat(),
            "finished_at": adapter.finished_at.isoformat(),
            "worker": job.worker,
            "rerun_of": job.rerun_of_id,
            "url": reverse("training_job", args=[adapter.project_id, job.pk]),
        },
        "release": {
            "id": release.pk,
            "name": release.name,
            "version": release.version,
            "hash": adapter.release_hash,
            "state": release.state,
            "url": reverse("release_detail", args=[adapter.project_id, release.pk]),
            "datasheet_url": reverse("api_release_datasheet", args=[adapter.project_id, release.pk]) + "?as=md",
        },
        "base_model": {
            "id": base.pk,
            "name": base.name,
            "path": base.path,
            "architecture": base.architecture,
            "parameter_count": base.parameter_count,
            "dtype": base.dtype,
            "hash": adapter.base_model_hash,
        },
        "config": adapter.config,
        "config_hash": adapter.config_hash,
        "seed": adapter.seed,
        "library_versions": adapter.library_versions,
        "code_version": adapter.code_version,
        "hardware": adapter.hardware,
        "network": job.environment.get("network", {}),
        "metrics": adapter.metrics,
        "project": {"id": adapter.project_id, "name": adapter.project.name},
    }
    if isinstance(adapter, RewardModel):
        # Scores are only meaningful for text tokenised as in training: scoring checks this hash.
        record["format"] = REWARD_LINEAGE_FORMAT
        record["tokenizer_hash"] = adapter.tokenizer_hash
        return record
    record.update(
        {
            # A continued DPO adapter's starting weights: ``metrics.train.start_weights_sha256`` equals the parent's
            # ``end_weights_sha256``.
            "parent": {
                "id": parent.pk,
                "name": parent.name,
                "sha256": adapter.parent_sha256,
                "url": reverse("adapter", args=[adapter.project_id, parent.pk]),
            }
            if (parent := adapter.parent) is not None
            else None,
            # Made in a round (rounds marks it): the round and the generation run whose candidates experts ranked.
            "round": marks_of("adapter", adapter.pk).get("round"),
            # The adapter merged into its base model, once a merge is ready (training.merge_runner).
            "merged_model": merged_record(adapter),
        }
    )
    return record


def merged_record(adapter: Adapter) -> dict[str, Any] | None:
    merged = MergedModel.objects.filter(adapter=adapter, state=MergedState.READY).first()
    if merged is None:
        return None
    return {
        "id": merged.pk,
        "sha256": merged.sha256,
        "size_bytes": merged.size_bytes,
        "files": merged.files,
        "storage_prefix": merged.storage_prefix,
        "adapter_sha256": merged.adapter_sha256,
        "base_model_hash": merged.base_model_hash,
        "library_versions": merged.library_versions,
        "worker": merged.worker,
        "finished_at": merged.finished_at.isoformat() if merged.finished_at else None,
    }
