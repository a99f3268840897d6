from celery import shared_task
from django.core.cache import cache

from accounts.models import Project
from preferences.services import AGREEMENT_PENDING, agreement_recompute


@shared_task(name="preferences.tasks.agreement_recompute")
def agreement_recompute_task(project_id: int) -> int | None:
    """Recompute a project's agreement figures on a worker; returns the snapshot id (None when the project
    was deleted meanwhile). The pending mark is cleared first, so judgements arriving during the
    computation queue the next run."""
    cache.delete(AGREEMENT_PENDING.format(project_id))
    project = Project.objects.filter(pk=project_id).first()
    return agreement_recompute(project=project).pk if project is not None else None
