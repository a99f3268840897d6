from celery import shared_task

from accounts.models import Project
from preferences.services import agreement_recompute


@shared_task(name="preferences.tasks.agreement_recompute")
def agreement_recompute_task(project_id: int) -> int:
    """Recompute a project's agreement figures on a worker; returns the snapshot id."""
    return agreement_recompute(project=Project.objects.get(pk=project_id)).pk
