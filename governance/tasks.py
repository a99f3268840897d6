"""Celery tasks of governance: take ids (or nothing), call one service."""

from celery import shared_task

from governance.services import retention_sweep


@shared_task(name="governance.retention_sweep")
def retention_sweep_task() -> dict[str, dict[str, int]]:
    """Run by Celery beat (``enclave.periodic.BEAT_SCHEDULE``): apply every project's retention policy."""
    return {str(pk): counts for pk, counts in retention_sweep().items()}
