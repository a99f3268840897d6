"""Retention: what a project keeps only for a while, deleted by the periodic ``governance.retention_sweep``.

- Import uploads: files under ``<MEDIA_ROOT>/imports/<project>/`` older than ``import_upload_days`` (an import
  deletes its upload when it ends; what stays is a crashed or abandoned one). An upload a queued or running
  import still reads is kept.
- Failed jobs' files: the work directories of training jobs and generation runs that failed or were cancelled
  more than ``failed_job_days`` ago, and files a failed job left in the artifact store without an adapter.
- Orphaned drafts: autosaved drafts not touched for ``orphaned_draft_days`` whose author holds no live lease
  on the item any more (nobody can submit them).

A project without a policy row keeps the defaults of ``RetentionPolicy``. Each sweep that deletes something
writes one ``retention.sweep`` audit event per project with the counts."""

import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Project
from accounts.services import audit_event_record
from annotation.models import Draft, ImportBatch, ImportStatus, Slot, SlotState
from core.storage import artifact_storage
from evaluation.models import GenerationRun
from governance.models import RetentionPolicy
from releases.artifacts import stored_under
from training.models import Adapter, JobState, TrainingJob

ENDED_BADLY = (JobState.FAILED, JobState.CANCELLED)


def policy_for(project: Project) -> RetentionPolicy:
    """The project's policy, or the defaults (unsaved) when it has none."""
    return RetentionPolicy.objects.filter(project=project).first() or RetentionPolicy(project=project)


def sweep_project(project: Project) -> dict[str, int]:
    """Apply the project's policy now; returns what was deleted (and audits it when anything was)."""
    policy = policy_for(project)
    now = timezone.now()
    counts = {"import_uploads": 0, "failed_job_files": 0, "orphaned_drafts": 0}
    if policy.import_upload_days:
        counts["import_uploads"] = _sweep_uploads(project, now - timedelta(days=policy.import_upload_days))
    if policy.failed_job_days:
        counts["failed_job_files"] = _sweep_failed_jobs(project, now - timedelta(days=policy.failed_job_days))
    with transaction.atomic():
        if policy.orphaned_draft_days:
            counts["orphaned_drafts"] = _sweep_drafts(project, now - timedelta(days=policy.orphaned_draft_days), now)
        if any(counts.values()):
            stored, _ = RetentionPolicy.objects.select_for_update().get_or_create(project=project)
            stored.last_swept_at = now
            stored.last_sweep = counts
            stored.save(update_fields=["last_swept_at", "last_sweep"])
            audit_event_record(
                actor=None,
                action="retention.sweep",
                target=project,
                project=project,
                payload=counts
                | {
                    name: getattr(policy, name)
                    for name in ("import_upload_days", "failed_job_days", "orphaned_draft_days")
                },
            )
    return counts


def _sweep_uploads(project: Project, cutoff: object) -> int:
    directory = Path(settings.MEDIA_ROOT) / "imports" / str(project.pk)
    if not directory.is_dir():
        return 0
    in_use = set(
        ImportBatch.objects.filter(project=project, status__in=(ImportStatus.QUEUED, ImportStatus.RUNNING))
        .exclude(stored_path="")
        .values_list("stored_path", flat=True)
    )
    deleted = 0
    limit = cutoff.timestamp()  # type: ignore[attr-defined]
    for path in sorted(directory.iterdir()):
        if not path.is_file() or str(path) in in_use or path.stat().st_mtime >= limit:
            continue
        path.unlink(missing_ok=True)
        ImportBatch.objects.filter(project=project, stored_path=str(path)).update(stored_path="")
        deleted += 1
    return deleted


def _sweep_failed_jobs(project: Project, cutoff: object) -> int:
    deleted = 0
    work = Path(settings.TRAINING_WORK_DIR)
    jobs = TrainingJob.objects.filter(project=project, state__in=ENDED_BADLY, finished_at__lt=cutoff)
    runs = GenerationRun.objects.filter(project=project, state__in=ENDED_BADLY, finished_at__lt=cutoff)
    for name in [job.work_name for job in jobs.only("pk")] + [run.work_name for run in runs.only("pk")]:
        directory = work / name
        if directory.is_dir():
            deleted += sum(1 for p in directory.rglob("*") if p.is_file())
            shutil.rmtree(directory, ignore_errors=True)
    storage = artifact_storage()
    with_adapter = set(Adapter.objects.filter(job__in=jobs).values_list("job_id", flat=True))
    for job_id in jobs.exclude(pk__in=with_adapter).values_list("pk", flat=True):
        try:
            names = list(stored_under(storage, f"adapters/{project.pk}/job-{job_id}"))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            storage.delete(name)
            deleted += 1
    return deleted


def _sweep_drafts(project: Project, cutoff: object, now: object) -> int:
    live = Slot.objects.filter(
        item_id=OuterRef("item_id"), user_id=OuterRef("user_id"), state=SlotState.LEASED, leased_until__gt=now
    )
    orphaned = Draft.objects.filter(item__project=project, updated_at__lt=cutoff).exclude(Exists(live))
    deleted, _ = Draft.objects.filter(pk__in=list(orphaned.values_list("pk", flat=True))).delete()
    return deleted
