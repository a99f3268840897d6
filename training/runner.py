"""The worker side of a training job: prepare the work directory, start the training process, watch it, and
record what happened.

The training runs in a child process, never in the worker: a crash, an out-of-memory kill or a cancel ends
the child and the worker goes on to the next job. Children are forked from a fork server that imported
torch, transformers, peft and trl once when the worker started (``prepare_worker``), so a job does not pay
for those imports (docs/PERFORMANCE.md, training). With several GPUs visible, or ``TRAINING_PROCESSES`` above
one, the child is started through ``accelerate launch`` instead, one process per GPU (or per CPU share).

The worker shares no disk with the web: release files come from the artifact store (``core.storage``) into
the job's directory under ``TRAINING_WORK_DIR``, a scratch space of this machine, and the adapter goes back
to the store; logs, metrics and the outcome go to the database.

While the child runs, the supervisor tails its ``events.jsonl`` and output into the database about twice a
second, beats the heartbeat, and checks for a cancel. When it exits, the adapter's files go to the artifact
store with their sha256 and the ``Adapter`` (or, for a reward job, the ``RewardModel``) is registered with its
lineage."""

import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import close_old_connections

from core.errors import DomainError
from core.hashing import file_sha256
from core.storage import artifact_storage
from core.version import code_version
from releases.models import ReleaseFile
from training import launch, services
from training.children import Child, fork_context, start_child, training_processes
from training.environment import apply_offline_env, library_versions
from training.models import BaseModel, JobKind, JobState, Trained, TrainingJob
from training.watching import HeartbeatThread, Tail, Watch, exit_reason, supervise

logger = logging.getLogger(__name__)


# --- The fork server and the worker's facts ---------------------------------------------------------------


_facts: dict[str, Any] = {}
_facts_lock = threading.Lock()


def worker_facts() -> dict[str, Any]:
    """Hardware, library versions and optional libraries as a training child sees them. Probed once per worker
    through the fork server, which also warms it: the first call waits for its imports."""
    with _facts_lock:
        if not _facts:
            apply_offline_env()
            work = Path(settings.TRAINING_WORK_DIR)
            work.mkdir(parents=True, exist_ok=True)
            target = work / f"probe-{os.getpid()}.json"
            process = fork_context().Process(target=launch.probe, args=(str(target),), name="enclave-probe")
            process.start()
            process.join(timeout=600)
            try:
                _facts.update(json.loads(target.read_text()))
            except (OSError, ValueError) as exc:
                raise RuntimeError(f"The training probe did not report (exit code {process.exitcode}).") from exc
            finally:
                target.unlink(missing_ok=True)
        return dict(_facts)


def prepare_worker(hostname: str) -> None:
    """When a gpu worker starts: fail the jobs it ran before a restart, remove what ended jobs left in the work
    directory, warm the fork server and report what this worker can run (GPUs, bitsandbytes, FlashAttention)."""
    close_old_connections()
    try:
        services.training_jobs_fail_orphans(worker=hostname)
        remove_work_of_ended_jobs()
        facts = worker_facts()
        services.training_worker_report(
            hostname=hostname,
            devices=facts["hardware"]["devices"],
            bitsandbytes=facts["bitsandbytes"],
            flash_attention=facts["flash_attention"],
            versions=facts["versions"],
        )
    finally:
        close_old_connections()


def remove_work_of_ended_jobs() -> list[str]:
    """Delete the work directories of jobs that are no longer running: a training child removes its own when
    its worker dies, but not when both were killed at once (a reboot, a kill of the whole process group).
    Directories of running jobs are kept: other workers may share this work directory."""
    work = Path(settings.TRAINING_WORK_DIR)
    found = {path.name: path for path in work.glob("job-*") if path.is_dir()}
    ids = {name: int(name[4:]) for name in found if name[4:].isdigit()}
    active = set(
        TrainingJob.objects.filter(pk__in=ids.values(), state__in=(JobState.QUEUED, JobState.RUNNING)).values_list(
            "pk", flat=True
        )
    )
    removed = [name for name, pk in ids.items() if pk not in active]
    for name in removed:
        shutil.rmtree(found[name], ignore_errors=True)
    return removed


def _stage_data(job: TrainingJob, work: Path) -> tuple[str, str | None]:
    """Copy the release's train and eval files from the artifact store, checking each against its sha256."""
    storage = artifact_storage()
    names: dict[str, str | None] = {}
    for split, path in (("train", services.TRAIN_FILES[job.kind]), ("eval", services.EVAL_FILES[job.kind])):
        stored = ReleaseFile.objects.filter(release=job.release, path=path).select_related("release").first()
        if stored is None or not stored.rows:
            names[split] = None
            continue
        target = work / "data" / f"{split}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(stored.storage_name, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
        if file_sha256(target) != stored.sha256:
            raise DomainError(f"{path} of {job.release} does not match its sha256 in the manifest; not training.")
        names[split] = str(target.relative_to(work))
    if names["train"] is None:
        raise DomainError(f"{job.release} has no training rows.")
    return str(names["train"]), names["eval"]


def stage_trained(trained: Trained, target: Path) -> Path:
    """Copy an adapter's (or a reward model's) files from the artifact store into ``target``, each checked
    against its sha256 in the lineage."""
    storage = artifact_storage()
    target.mkdir(parents=True, exist_ok=True)
    for entry in trained.files:
        path = target / entry["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(f"{trained.storage_prefix}/{entry['path']}", "rb") as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
        if file_sha256(path) != entry["sha256"]:
            raise DomainError(f"{entry['path']} of {trained} does not match its sha256 in the lineage; not using it.")
    return target


def base_model_check_here(model: BaseModel) -> None:
    """Refuse a base model whose directory on this node lacks a checked file or holds one of another size. The
    check hashed the files on one node; with several gpu nodes each holds its own copy, and an adapter trained
    on other weights would carry a false base-model hash. Sizes only: hashing every job's weights costs minutes."""
    directory = Path(model.path)
    missing, changed = [], []
    for entry in model.files:
        path = directory / entry["path"]
        if not path.is_file():
            missing.append(entry["path"])
        elif path.stat().st_size != entry["size_bytes"]:
            changed.append(entry["path"])
    problems = [f"{what}: {', '.join(names)}" for what, names in (("missing", missing), ("another size", changed))
                if names]  # fmt: skip
    if problems:
        raise DomainError(
            f"The files of base model {model} on this gpu node differ from those checked ({'; '.join(problems)}). "
            f"Give every gpu node the same files at {directory}, or check the model again."
        )


def _store_adapter(job: TrainingJob, adapter_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """Put what the job trained into the artifact store: ``adapters/…``, or ``reward-models/…`` for a reward
    model (its adapter with the score head)."""
    storage = artifact_storage()
    folder = "reward-models" if job.kind == JobKind.REWARD else "adapters"
    prefix = f"{folder}/{job.project_id}/job-{job.pk}"
    files = []
    for path in sorted(adapter_dir.rglob("*")):
        if not path.is_file():
            continue
        relative = str(path.relative_to(adapter_dir))
        digest = file_sha256(path)
        name = f"{prefix}/{relative}"
        if storage.exists(name):
            storage.delete(name)
        with path.open("rb") as stream:
            saved = storage.save(name, File(stream, name=relative))
        if saved != name:
            raise RuntimeError(f"The artifact store saved {name} as {saved}.")
        files.append({"path": relative, "size_bytes": path.stat().st_size, "sha256": digest})
    return prefix, files


def run_job(job_id: int, worker: str) -> str:
    """Run one job to its end on this worker; returns the final state. Never raises for a failed training."""
    try:
        facts = worker_facts()
    except Exception as exc:
        facts, broken = {"versions": library_versions(), "hardware": {}}, f"This worker cannot train: {exc}"
    else:
        broken = ""
    environment = {"versions": facts["versions"], "hardware": facts["hardware"], "code_version": code_version()}
    job = services.training_job_begin(job_id=job_id, worker=worker, environment=environment)
    if job is None:
        return "skipped"
    if broken:
        services.training_job_finish(job=job, state=JobState.FAILED, reason=broken)
        return JobState.FAILED
    work = Path(settings.TRAINING_WORK_DIR) / job.work_name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    watch = Watch(job=job, events=Tail(work / "events.jsonl"), output=Tail(work / "output.log"))
    beat = HeartbeatThread(job.pk)  # staging and storing can take longer than the reaper waits
    beat.start()
    try:
        base_model_check_here(job.base_model)
        train_file, eval_file = _stage_data(job, work)
        parent_dir = None
        if job.parent_adapter is not None:
            parent_dir = str(stage_trained(job.parent_adapter, work / "parent"))
        spec = {
            "job_id": job.pk,
            "kind": job.kind,
            "parent_adapter_dir": parent_dir,
            "config": job.config,
            "model_dir": job.base_model.path,
            "work_dir": str(work),
            "train_file": train_file,
            "eval_file": eval_file,
            "supervisor_pid": os.getpid(),
        }
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True))
        child = start_child(spec_path, training_processes(len(facts["hardware"]["devices"])))
        state, reason = _supervise(child, watch)
        if state == JobState.SUCCEEDED:
            result = json.loads((work / "result.json").read_text())
            prefix, files = _store_adapter(job, work / "adapter")
            services.trained_register(
                job=job,
                storage_prefix=prefix,
                files=files,
                result=result,
                hardware=facts["hardware"],
                library_versions=facts["versions"],
                code_version=environment["code_version"],
            )
        else:
            services.training_job_finish(job=job, state=state, reason=reason, evaluation=watch.evaluation)
    except Exception as exc:
        logger.exception("training job %s failed in its supervisor", job_id)
        message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        services.training_job_finish(job=job, state=JobState.FAILED, reason=message, evaluation=watch.evaluation)
    finally:
        beat.stop()
        shutil.rmtree(work, ignore_errors=True)
    job.refresh_from_db(fields=["state"])
    return str(job.state)


def _supervise(child: Child, watch: Watch) -> tuple[str, str]:
    """Watch the child to its end (``training.watching.supervise``) and say how it ended."""
    code, cancelled = supervise(child, watch.pump, f"job {watch.job.pk}")
    if cancelled:
        job = TrainingJob.objects.select_related("cancel_requested_by").get(pk=watch.job.pk)
        if job.cancel_requested_by is None:  # ended meanwhile (failed as lost): training_job_finish keeps that
            return JobState.FAILED, "The job ended while it trained; the training process was stopped."
        return JobState.CANCELLED, f"Cancelled by {job.cancel_requested_by.username} at step {job.step}."
    if code == 0 and (Path(watch.events.path).parent / "result.json").exists():
        return JobState.SUCCEEDED, ""
    return JobState.FAILED, exit_reason(code, watch)
