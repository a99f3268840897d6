from typing import Any

from celery import shared_task
from django.conf import settings

from releases.drift import drift_report_compute
from releases.followups import drift_report_after
from releases.services import prompt_embeddings_compute, release_build


@shared_task(name="releases.release_build", bind=True, max_retries=None)
def release_build_task(self: Any, release_id: int) -> str:
    """Build a release on a worker. Builds of one project run one at a time (the sticky evaluation split
    depends on the releases before): while another runs, this one waits and retries."""
    release = release_build(release_id=release_id)
    if release is None:
        raise self.retry(countdown=10)
    return str(release.state)


# Routed to the gpu queue (the model lives on gpu workers); acknowledged late, as the settings say: embedding is
# idempotent, so a run whose worker died may come back and finish.
@shared_task(name="releases.prompt_embeddings_compute", bind=True)
def prompt_embeddings_compute_task(self: Any, project_id: int) -> int:
    """Embed up to ``EMBEDDING_TASK_ITEMS`` of the project's prompts that have no embedding by the current model
    (2,048 by default: about 40 s on one CPU core), and queue the next task when that many were embedded (more may
    wait). A large import is embedded by a chain of tasks, each at the back of the gpu queue, so a training job
    queued meanwhile does not wait for all of it. Once the last has run, the drift report reads the new embeddings.
    Returns how many this one embedded."""
    limit = settings.EMBEDDING_TASK_ITEMS
    embedded = prompt_embeddings_compute(project_id=project_id, limit=limit)
    if embedded >= limit:
        self.apply_async(kwargs={"project_id": project_id})
    elif embedded:
        drift_report_after(project_id)
    return embedded


@shared_task(name="releases.drift_report_compute")
def drift_report_compute_task(report_id: int) -> str:
    """Compute a queued eval-set drift report (default queue: numpy on stored embeddings, no model)."""
    return str(drift_report_compute(report_id=report_id).state)
