"""Retention: a project's policy, and the sweep Celery beat sends, run by a real default worker: old import
uploads, failed jobs' files and orphaned drafts go, what is recent or still in use stays, one audit event
per project says how many."""

import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import AuditEvent
from annotation import services as annotation_services
from annotation.models import Draft, ImportBatch, ImportStatus, Slot, SlotState
from core.errors import DomainError
from enclave.celery import app
from enclave.periodic import beat_schedule
from governance import services
from governance.models import RetentionPolicy
from governance.tasks import retention_sweep_task
from tests.annotation.helpers import give_rubric, import_items
from tests.conftest import Personas
from tests.training.helpers import ready_model
from training.config import JobConfig
from training.models import TrainingJob

OLD = time.time() - 40 * 24 * 3600


def _aged(path: Path, text: str = "raw upload") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (OLD, OLD))
    return path


def test_it_declares_the_sweep_for_celery_beat() -> None:
    [entry] = beat_schedule().values()
    assert entry["task"] == "governance.retention_sweep"
    assert entry["task"] in app.tasks
    assert entry["schedule"] == settings.RETENTION_SWEEP_INTERVAL
    assert entry["options"]["queue"] == "default"
    assert app.conf.beat_schedule == beat_schedule()


def test_it_checks_and_audits_a_policy_change(personas: Personas) -> None:
    with pytest.raises(DomainError) as refused:
        services.retention_policy_update(actor=personas.data_lead, project=personas.project,
                                         values={"failed_job_days": "0"})  # fmt: skip
    assert refused.value.field == "failed_job_days"
    with pytest.raises(DomainError):
        services.retention_policy_update(actor=personas.data_lead, project=personas.project,
                                         values={"import_upload_days": "soon"})  # fmt: skip
    assert not RetentionPolicy.objects.exists()
    policy = services.retention_policy_update(
        actor=personas.data_lead, project=personas.project,
        values={"import_upload_days": "7", "orphaned_draft_days": ""},
    )  # fmt: skip
    assert (policy.import_upload_days, policy.failed_job_days, policy.orphaned_draft_days) == (7, 30, None)
    event = AuditEvent.objects.get(action="retention.update")
    assert event.payload["after"] == {"import_upload_days": 7, "failed_job_days": 30, "orphaned_draft_days": None}


@pytest.mark.worker
def test_it_sweeps_what_the_policy_keeps_no_longer_on_a_real_worker(
    worker: "subprocess.Popen[str]", personas: Personas, tiny_model_dir: Path
) -> None:
    project = personas.project
    uploads = Path(settings.MEDIA_ROOT) / "imports" / str(project.pk)
    abandoned = _aged(uploads / "20240101T000000000000.upload")
    fresh = uploads / "fresh.upload"
    fresh.write_text("still wanted")
    in_use = _aged(uploads / "queued.upload")
    ImportBatch.objects.create(project=project, uploaded_by=personas.data_lead, source_name="q.jsonl",
                               fmt="chat_jsonl", sha256="", size_bytes=3, stored_path=str(in_use),
                               status=ImportStatus.QUEUED)  # fmt: skip

    model = ready_model(personas.staff, tiny_model_dir)
    config = JobConfig.from_dict("dpo", {"max_steps": 2})
    from tests.training.helpers import preference_release

    release = preference_release(project, personas.data_lead, personas.reviewer, count=4)

    def job(state: str, days: int) -> TrainingJob:
        made = TrainingJob.objects.create(
            project=project, kind="dpo", release=release, base_model=model, config=config.canonical(),
            config_hash=config.hash, created_by=personas.project_admin, state=state,
            finished_at=timezone.now() - timedelta(days=days),
        )  # fmt: skip
        _aged(Path(settings.TRAINING_WORK_DIR) / made.work_name / "data" / "train.jsonl", '{"prompt": "x"}')
        _aged(Path(settings.TRAINING_WORK_DIR) / made.work_name / "output.log", "step 1")
        return made

    failed_long_ago, failed_lately, succeeded = job("failed", 40), job("failed", 2), job("succeeded", 40)

    give_rubric(project, personas.data_lead)
    items = import_items(project, personas.data_lead, 2)
    orphan = Draft.objects.create(item=items[0], user=personas.annotator, data={"response": "half"})
    slot = annotation_services.item_next(user=personas.reviewer, project=project)
    assert slot is not None
    kept = Draft.objects.create(item=slot.item, user=personas.reviewer, data={"response": "working on it"})
    Draft.objects.filter(pk__in=[orphan.pk, kept.pk]).update(updated_at=timezone.now() - timedelta(days=100))
    assert Slot.objects.filter(item=slot.item, user=personas.reviewer, state=SlotState.LEASED).exists()

    counts = retention_sweep_task.delay().get(timeout=120)

    assert counts == {str(project.pk): {"import_uploads": 1, "failed_job_files": 2, "orphaned_drafts": 1}}
    assert not abandoned.exists()
    assert fresh.exists()
    assert in_use.exists()
    work = Path(settings.TRAINING_WORK_DIR)
    assert not (work / failed_long_ago.work_name).exists()
    assert (work / failed_lately.work_name).exists()
    assert (work / succeeded.work_name).exists()
    assert list(Draft.objects.values_list("pk", flat=True)) == [kept.pk]
    event = AuditEvent.objects.get(action="retention.sweep")
    assert event.project_id == project.pk
    assert event.actor_id is None
    assert event.payload["import_uploads"] == 1
    assert event.payload["orphaned_drafts"] == 1
    assert RetentionPolicy.objects.get(project=project).last_sweep == counts[str(project.pk)]

    # Nothing left to delete: the next turn writes no event.
    assert retention_sweep_task.delay().get(timeout=60) == {}
    assert AuditEvent.objects.filter(action="retention.sweep").count() == 1
