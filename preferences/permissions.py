"""Access helpers of the preferences app: each answers 404 for missing and forbidden alike."""

from django.http import Http404

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user, project_perms_for
from annotation.models import Item
from core.http import parse_id
from preferences import submit_sql
from preferences.models import Adjudication

# What a judgement or the next comparison reads of its project: fetched with it, in one query.
SETTINGS = ("preferences", "annotation")


def get_comparison_for_user(user: AnyUser, project_pk: int, item_pk: int) -> Item:
    project = get_project_for_user(user, project_pk, ProjectPerm.ANNOTATE, with_settings=SETTINGS)
    if parse_id(item_pk) is None:
        raise Http404("No such comparison.")
    item = submit_sql.comparison_of_project(project, item_pk)  # written out: every submit asks it
    if item is None:
        raise Http404("No such comparison.")
    item.project = project  # the instance that carries the settings and the permissions already read
    return item


def get_adjudication_for_reviewer(user: AnyUser, project_pk: int, adjudication_pk: int) -> Adjudication:
    project = get_project_for_user(user, project_pk, ProjectPerm.REVIEW)
    adjudication = Adjudication.objects.filter(item__project=project, pk=adjudication_pk).select_related("item").first()
    if adjudication is None:
        raise Http404("No such adjudication.")
    return adjudication


def get_project_for_quality(user: AnyUser, project_pk: int) -> Project:
    """The project, for who watches quality and agreement: reviewers and data leads; 404 for anyone else."""
    project = get_project_for_user(user, project_pk)
    if not project_perms_for(user, project) & {ProjectPerm.REVIEW, ProjectPerm.MANAGE_DATA}:
        raise Http404("No such project.")
    return project
