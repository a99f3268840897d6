from celery import shared_task

from annotation.services import import_run


@shared_task(name="annotation.import_run")
def import_run_task(batch_id: int) -> str:
    """Import a large file on a worker; the batch page shows its progress."""
    return import_run(batch_id=batch_id).status
