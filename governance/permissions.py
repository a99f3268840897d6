"""Access helpers of the governance app: each answers 404 for missing and forbidden alike.

A dossier holds the audit trail of a project's data and models, so it is for those who may read the project's
audit log (project admins, through ``view_project_audit``) and for site staff."""

from accounts.models import ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user
from core.http import row_or_404
from training.models import Adapter


def get_adapter_for_dossier(user: AnyUser, project_pk: int | str, adapter_pk: int | str) -> Adapter:
    project = get_project_for_user(user, project_pk, ProjectPerm.VIEW_AUDIT)
    adapters = Adapter.objects.filter(project=project).select_related(
        "project", "job", "release", "base_model", "started_by"
    )
    return row_or_404(adapters, adapter_pk, "No such adapter.")
