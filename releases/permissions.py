"""Access helpers of the releases app: each answers 404 for missing and forbidden alike.

Data leads build releases; data leads and project admins (who train on them) read and download them;
only project admins and site staff delete. Annotators and reviewers never see releases."""

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_any, get_project_for_user
from core.http import row_or_404
from releases.models import Release, ReleaseFile

READ_PERMS = {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}


def get_project_for_releases(user: AnyUser, project_pk: int) -> Project:
    return get_project_for_any(user, project_pk, READ_PERMS)


def get_release_for_user(user: AnyUser, project_pk: int, release_pk: int) -> Release:
    project = get_project_for_releases(user, project_pk)
    releases = Release.objects.filter(project=project).select_related("project", "created_by")
    return row_or_404(releases, release_pk, "No such release.")


def get_release_for_admin(user: AnyUser, project_pk: int, release_pk: int) -> Release:
    """Deleting is for project admins (the role that manages members) and site staff."""
    project = get_project_for_user(user, project_pk, ProjectPerm.MANAGE_MEMBERS)
    return row_or_404(Release.objects.filter(project=project).select_related("project"), release_pk, "No such release.")


def get_release_file_for_user(user: AnyUser, project_pk: int, release_pk: int, file_pk: int) -> ReleaseFile:
    release = get_release_for_user(user, project_pk, release_pk)
    files = ReleaseFile.objects.filter(release=release).select_related("release__project")  # the download's audit
    return row_or_404(files, file_pk, "No such file.")
