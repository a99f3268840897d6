"""Access helpers of the governance app: each answers 404 for missing and forbidden alike.

An erasure reaches the projects where the user may manage data (``manage_project_data``: data leads and
project admins; site staff everywhere). An erasure already made is seen by site staff and by whoever may
manage data in every project it touched; a retention policy by those who may manage the project's data. A
dossier holds the audit trail of a project's data and models, so it is for those who may read the project's audit
log (project admins, through ``view_project_audit``) and for site staff."""

from django.http import Http404
from guardian.shortcuts import get_objects_for_user

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user, is_site_staff
from core.http import row_or_404
from governance.models import Erasure
from releases.models import Release
from training.models import Adapter


def get_adapter_for_dossier(user: AnyUser, project_pk: int | str, adapter_pk: int | str) -> Adapter:
    project = get_project_for_user(user, project_pk, ProjectPerm.VIEW_AUDIT)
    adapters = Adapter.objects.filter(project=project).select_related(
        "project", "job", "release", "base_model", "started_by"
    )
    return row_or_404(adapters, adapter_pk, "No such adapter.")


def erasure_project_ids(user: AnyUser) -> list[int]:
    """The projects an erasure by ``user`` searches: where they may manage data (site staff: every project)."""
    if not user.is_authenticated or not user.is_active:
        return []
    if is_site_staff(user):
        return list(Project.objects.order_by("pk").values_list("pk", flat=True))
    projects = get_objects_for_user(
        user, f"accounts.{ProjectPerm.MANAGE_DATA}", klass=Project, accept_global_perms=False
    )
    return sorted(projects.values_list("pk", flat=True))


def require_erasure_rights(user: AnyUser) -> list[int]:
    """The projects of ``erasure_project_ids``; 404 when there are none."""
    project_ids = erasure_project_ids(user)
    if not project_ids:
        raise Http404("Not found.")
    return project_ids


def get_erasure_for_user(user: AnyUser, pk: int) -> Erasure:
    allowed = set(require_erasure_rights(user))
    erasure = row_or_404(Erasure.objects.select_related("actor").prefetch_related("projects"), pk, "No such erasure.")
    if not is_site_staff(user) and not {p.pk for p in erasure.projects.all()} <= allowed:
        raise Http404("No such erasure.")
    return erasure


def get_project_for_retention(user: AnyUser, project_pk: int) -> Project:
    return get_project_for_user(user, project_pk, ProjectPerm.MANAGE_DATA)


def get_release_for_rebuild(user: AnyUser, project_pk: int, release_pk: int) -> Release:
    """A release of a project whose data ``user`` manages (rebuilding makes a release)."""
    project = get_project_for_user(user, project_pk, ProjectPerm.MANAGE_DATA)
    return row_or_404(Release.objects.filter(project=project).select_related("project"), release_pk, "No such release.")
