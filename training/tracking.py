"""Runs in MLflow: with ``MLFLOW_TRACKING_URI`` set, every training job that ends is logged to the organisation's
tracking server as one run, by a task on a default worker once the job's end has committed, so MLflow being slow,
away or refusing never delays or fails a job.

The run (experiment "<MLFLOW_EXPERIMENT_PREFIX>/<project>", named after the job) holds the whole config as params,
every figure the job page charts with its step (and the held-out evaluation before and after), the release,
base-model, config and adapter hashes with the code version as tags, and as artifacts the lineage record
(``lineage.json``, as the adapter page downloads it), the release's datasheet (``datasheet.md`` and ``.json``) and
the adapter's files (``adapter/``: a LoRA adapter is a few MB), which a model version of the registered model
"<prefix>.<project>.<base model>" points at, with the adapter's sha256 in its tags.

Each job has one ``MlflowRun`` row: queued in the transaction that ends the job, then logged or failed with the
reason, each outcome an audit event (``training.mlflow_logged``, ``training.mlflow_failed``); a failure is sent
again by a person (``training_job_mlflow_resend``) or the operator (``manage.py mlflow_log``). Without the setting
nothing is queued, nothing is sent and mlflow is never imported."""

import importlib.metadata
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_event_record
from core.dispatch import send_on_commit
from core.errors import DomainError
from core.storage import artifact_storage
from training import selectors
from training.mlflow_logging import (
    Logged,
    RunRecord,
    flat_params,
    log_run,
    model_version_url,
    public_uri,
    run_url,
)
from training.models import (
    Adapter,
    JobKind,
    JobMetric,
    JobState,
    MlflowRun,
    MlflowState,
    RewardModel,
    TrainingJob,
)

logger = logging.getLogger(__name__)

RUN_STATUS: dict[str, str] = {JobState.SUCCEEDED: "FINISHED", JobState.FAILED: "FAILED", JobState.CANCELLED: "KILLED"}
ENDED = tuple(RUN_STATUS)


def tracking_enabled() -> bool:
    return bool(settings.MLFLOW_TRACKING_URI)


def mlflow_log_queue(job: TrainingJob) -> bool:
    """Inside the transaction that ends ``job``: queue its run for a default worker, sent once the end commits.
    Returns whether it was queued: never without ``MLFLOW_TRACKING_URI``, nor for a job that never started (it
    trained nothing). The caller's audit event of the job's end says so."""
    if not tracking_enabled() or job.started_at is None:
        return False
    MlflowRun.objects.update_or_create(
        job=job, defaults={"state": MlflowState.QUEUED, "reason": "", "updated_at": timezone.now()}
    )
    _send(job.pk)
    return True


def _send(job_id: int) -> None:
    from training.tasks import training_job_mlflow_log_task

    send_on_commit(
        lambda: training_job_mlflow_log_task.delay(job_id),
        what=f"MLflow run of training job #{job_id}",
        on_refused=lambda reason: training_job_mlflow_failed(job_id=job_id, reason=reason),
    )


def training_job_mlflow_resend(*, actor: User | None, job: TrainingJob) -> MlflowRun:
    """Queue the job's run again (after MLflow was away, or for a job that ended before the setting was made).
    Raises ``DomainError`` when no tracking server is set, the job has not ended, or its run is logged already
    (or queued). Audited as ``training.mlflow_requested``."""
    if not tracking_enabled():
        raise DomainError(
            "No MLflow tracking server is set: set MLFLOW_TRACKING_URI on the web and the workers.", status=409
        )
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update(of=("self",)).select_related("project").get(pk=job.pk)
        if job.state not in ENDED or job.started_at is None:
            raise DomainError(f"{job} has not trained to an end; it is logged to MLflow when it does.", status=409)
        row = MlflowRun.objects.select_for_update().filter(job=job).first()
        if row is not None and row.state != MlflowState.FAILED:
            raise DomainError(f"{job} is {row.get_state_display().lower()} in MLflow already.", status=409)
        row, _ = MlflowRun.objects.update_or_create(
            job=job, defaults={"state": MlflowState.QUEUED, "reason": "", "updated_at": timezone.now()}
        )
        audit_event_record(
            actor=actor, action="training.mlflow_requested", target=job, project=job.project,
            payload={"tracking_uri": public_uri(str(settings.MLFLOW_TRACKING_URI))},
        )  # fmt: skip
        _send(job.pk)
    return row


def training_job_mlflow_failed(*, job_id: int, reason: str) -> None:
    """The run could not be logged (or its task sent): record why, unless it was logged meanwhile."""
    with transaction.atomic():
        row = MlflowRun.objects.select_for_update().select_related("job__project").filter(job_id=job_id).first()
        if row is None or row.state == MlflowState.LOGGED:
            return
        _record_failure(row, reason)


def _record_failure(row: MlflowRun, reason: str) -> None:
    row.state = MlflowState.FAILED
    row.reason = reason[:4000]
    row.tracking_uri = public_uri(settings.MLFLOW_TRACKING_URI or "")
    row.updated_at = timezone.now()
    row.save(update_fields=["state", "reason", "tracking_uri", "updated_at"])
    audit_event_record(
        actor=None, action="training.mlflow_failed", target=row.job, project=row.job.project,
        payload={"tracking_uri": row.tracking_uri, "reason": row.reason[:2000], "attempts": row.attempts},
    )  # fmt: skip


def training_job_mlflow_log(*, job_id: int) -> MlflowRun | None:
    """On a default worker: log the job's queued run to MLflow and record the outcome (``training.mlflow_logged``
    with the run, or ``training.mlflow_failed`` with the reason); never raises for MLflow's errors. Returns the row,
    or ``None`` when there is nothing to do (not queued, or another worker is logging it right now). The row stays
    locked while the run is sent, so a task delivered twice logs it once."""
    with transaction.atomic():
        row = (
            MlflowRun.objects.select_for_update(skip_locked=True)
            .filter(job_id=job_id, state=MlflowState.QUEUED)
            .select_related("job__project", "job__release", "job__base_model", "job__created_by")
            .first()
        )
        if row is None:
            return None
        uri = settings.MLFLOW_TRACKING_URI
        row.attempts += 1
        row.save(update_fields=["attempts"])
        if not uri:
            _record_failure(row, "MLFLOW_TRACKING_URI is not set on the worker that took the job's run.")
            return row
        try:
            with tempfile.TemporaryDirectory(prefix="enclave-mlflow-") as folder:
                record = run_record(row.job, Path(folder))
                logged = log_run(record, tracking_uri=uri)
        except Exception as exc:
            logger.warning("MLflow run of training job #%s not logged", job_id, exc_info=True)
            _record_failure(row, f"MLflow at {public_uri(uri)} did not take the run: {type(exc).__name__}: {exc}")
            return row
        _record_logged(row, record, logged, uri)
    return row


def _record_logged(row: MlflowRun, record: RunRecord, logged: Logged, uri: str) -> None:
    row.state = MlflowState.LOGGED
    row.reason = ""
    row.tracking_uri = public_uri(uri)
    row.experiment_id, row.experiment_name = logged.experiment_id, record.experiment_name
    row.run_id = logged.run_id
    row.model_name, row.model_version = (record.model_name, logged.model_version) if logged.model_version else ("", "")
    row.updated_at = timezone.now()
    row.save()
    audit_event_record(
        actor=None, action="training.mlflow_logged", target=row.job, project=row.job.project,
        payload={
            "tracking_uri": row.tracking_uri, "experiment": row.experiment_name, "experiment_id": row.experiment_id,
            "run_id": row.run_id, "model_name": row.model_name, "model_version": row.model_version,
            "adopted": logged.adopted, "attempts": row.attempts,
        },
    )  # fmt: skip


def mlflow_status(job: TrainingJob) -> dict[str, Any] | None:
    """The job's run as the page and the API show it: state, reason, run and model-version links; ``None`` when
    the job has none and none is coming."""
    row = getattr(job, "mlflow_run", None)
    if row is None:
        return None
    status: dict[str, Any] = {
        "state": row.state,
        "reason": row.reason,
        "tracking_uri": row.tracking_uri or public_uri(settings.MLFLOW_TRACKING_URI or ""),
        "experiment_id": row.experiment_id,
        "experiment": row.experiment_name,
        "run_id": row.run_id,
        "run_url": "",
        "model_name": row.model_name,
        "model_version": row.model_version,
        "model_version_url": "",
        "attempts": row.attempts,
        "updated_at": row.updated_at,
    }
    if row.state == MlflowState.LOGGED:
        status["run_url"] = run_url(row.tracking_uri, row.experiment_id, row.run_id)
        if row.model_version:
            status["model_version_url"] = model_version_url(row.tracking_uri, row.model_name, row.model_version)
    return status


# --- What the run holds ------------------------------------------------------------------------------------


def _ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def _name(*parts: str) -> str:
    """A registered model's name: MLflow refuses '/' and ':' in it."""
    return ".".join(part.replace("/", "-").replace(":", "-") for part in parts)


def enclave_version() -> str:
    try:
        return importlib.metadata.version("enclave")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_record(job: TrainingJob, folder: Path) -> RunRecord:
    """Read what the job's run holds; the files it uploads are written under ``folder``."""
    trained: Adapter | RewardModel | None = None
    if job.state == JobState.SUCCEEDED:
        trained = job.reward_model if job.kind == JobKind.REWARD else job.adapter
    project, release, base = job.project, job.release, job.base_model
    params, cut = flat_params(job.config)
    code_version = trained.code_version if trained else str(job.environment.get("code_version", ""))
    tags = {
        "enclave.job_kind": job.kind,
        "enclave.job_state": job.state,
        "enclave.project": project.name,
        "enclave.project_id": str(project.pk),
        "enclave.release": f"{release.name} v{release.version}",
        "enclave.release_hash": trained.release_hash if trained else release.hash,
        "enclave.base_model": base.name,
        "enclave.base_model_hash": trained.base_model_hash
        if trained
        else str(job.environment.get("inputs", {}).get("base_model_hash", base.content_hash)),
        "enclave.config_hash": job.config_hash,
        "enclave.code_version": code_version or "unknown",
        "enclave.version": enclave_version(),
        "enclave.started_by": job.created_by.username,
        "mlflow.user": job.created_by.username,
        "mlflow.source.name": "enclave",
        "mlflow.source.type": "JOB",
        "mlflow.note.content": f"Enclave {job} on {release.name} v{release.version} and base model {base.name}."
        + (" Its lineage record is lineage.json; the release's datasheet, datasheet.md." if trained else ""),
    }
    if cut:
        tags["enclave.params_cut"] = ", ".join(cut)  # longer than MLflow takes: whole in lineage.json
    if job.failure_reason:
        tags["enclave.failure_reason"] = job.failure_reason[:5000]
    if trained is not None:
        tags["enclave.adapter_sha256"] = trained.sha256
    if isinstance(trained, Adapter) and trained.parent_sha256:
        tags["enclave.parent_adapter_sha256"] = trained.parent_sha256
    finished = job.finished_at or timezone.now()
    record = RunRecord(
        job_id=job.pk,
        experiment_name=f"{settings.MLFLOW_EXPERIMENT_PREFIX}/{project.name}",
        run_name=f"job-{job.pk} {job.kind}",
        status=RUN_STATUS.get(job.state, "FAILED"),
        start_ms=_ms(job.started_at or job.created_at),
        end_ms=_ms(finished),
        params=params,
        metrics=_metrics(job),
        tags=tags,
        experiment_tags={"enclave.project_id": str(project.pk), "enclave.project": project.name},
        artifacts=folder,
    )
    _write_datasheet(job, folder)
    if trained is not None:
        _write_trained(trained, folder, record)
    return record


def _metrics(job: TrainingJob) -> list[tuple[str, float, int, int]]:
    """Every number the job logged, with its step (the page's charts draw from the same rows), and the held-out
    evaluation before training (step 0) and after (the last step)."""
    metrics = []
    for step, logged_at, values in JobMetric.objects.filter(job=job).order_by("id").values_list(
        "step", "logged_at", "values"
    ):  # fmt: skip
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                metrics.append((str(key), float(value), _ms(logged_at), int(step)))
    at = _ms(job.finished_at or timezone.now())
    for when, step in (("before", 0), ("after", job.total_steps or job.step)):
        for key, value in (job.evaluation.get(when) or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                metrics.append((f"held_out_{when}/{key}", float(value), at, int(step)))
    return metrics


def _write_datasheet(job: TrainingJob, folder: Path) -> None:
    storage = artifact_storage()
    for stored in job.release.files.filter(path__in=("datasheet.md", "datasheet.json")).select_related("release"):
        with storage.open(stored.storage_name, "rb") as source, (folder / stored.path).open("wb") as out:
            shutil.copyfileobj(source, out)


def _write_trained(trained: Adapter | RewardModel, folder: Path, record: RunRecord) -> None:
    from training.runner import stage_trained  # the worker's side of the store; imports this floor's services

    lineage = selectors.lineage(trained)
    (folder / "lineage.json").write_text(json.dumps(lineage, cls=DjangoJSONEncoder, indent=2, sort_keys=True))
    what = "reward_model" if isinstance(trained, RewardModel) else "adapter"
    stage_trained(trained, folder / what)
    job = trained.job
    record.model_artifact_path = what
    kind = [] if what == "adapter" else ["reward"]
    record.model_name = _name(settings.MLFLOW_EXPERIMENT_PREFIX, job.project.name, job.base_model.name, *kind)
    record.model_tags = {
        "enclave.adapter_sha256": trained.sha256,
        "enclave.release_hash": trained.release_hash,
        "enclave.base_model_hash": trained.base_model_hash,
        "enclave.config_hash": trained.config_hash,
        "enclave.job_id": str(job.pk),
        f"enclave.{what}_id": str(trained.pk),
    }
    record.model_description = (
        f"{trained.name}. adapter_model.safetensors sha256 {trained.sha256}; release {trained.release_hash}; base "
        f"model {trained.base_model_hash}; config {trained.config_hash}."
    )
