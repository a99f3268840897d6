"""Access helpers of the releases app: each answers 404 for missing and forbidden alike.

Data leads build releases; data leads and project admins (who train on them) read and download them;
only project admins and site staff delete. Annotators and reviewers never see releases."""

from django.http import Http404

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user, project_perms_for
from releases.models import Release, ReleaseFile

READ_PERMS = {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}


def get_project_for_releases(user: AnyUser, project_pk: int) -> Project:
    project = get_project_for_user(user, project_pk)
    if not project_perms_for(user, project) & READ_PERMS:
        raise Http404("No such project.")
    return project


def get_release_for_user(user: AnyUser, project_pk: int, release_pk: int) -> Release:
    project = get_project_for_releases(user, project_pk)
    release = Release.objects.filter(project=project, pk=release_pk).select_related("project", "created_by").first()
    if release is None:
        raise Http404("No such release.")
    return release


def get_release_for_admin(user: AnyUser, project_pk: int, release_pk: int) -> Release:
    """Deleting is for project admins (the role that manages members) and site staff."""
    project = get_project_for_user(user, project_pk, ProjectPerm.MANAGE_MEMBERS)
    release = Release.objects.filter(project=project, pk=release_pk).select_related("project").first()
    if release is None:
        raise Http404("No such release.")
    return release


def get_release_file_for_user(user: AnyUser, project_pk: int, release_pk: int, file_pk: int) -> ReleaseFile:
    release = get_release_for_user(user, project_pk, release_pk)
    found = ReleaseFile.objects.filter(release=release, pk=file_pk).select_related("release").first()
    if found is None:
        raise Http404("No such file.")
    return found
