from celery import shared_task

from preferences.services import agreement_recompute_queued


@shared_task(name="preferences.agreement_recompute")
def agreement_recompute_task(project_id: int) -> int | None:
    """Recompute a project's agreement figures on a worker, and queue the next run if judgements arrived
    meanwhile; returns the snapshot id (None when the project was deleted meanwhile)."""
    snapshot = agreement_recompute_queued(project_id=project_id)
    return snapshot.pk if snapshot is not None else None
