"""Access helpers of the preferences app: each answers 404 for missing and forbidden alike."""

from django.http import Http404

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user, project_perms_for
from annotation.models import Item
from core import rawrows
from core.http import parse_id
from preferences.models import Adjudication

# What a judgement or the next comparison reads of its project: fetched with it, in one query.
SETTINGS = ("preferences", "annotation")


_ITEM_SQL = "SELECT {columns} FROM annotation_item i WHERE i.id = %s AND i.project_id = %s AND i.kind = %s"


def get_comparison_for_user(user: AnyUser, project_pk: int, item_pk: int) -> Item:
    project = get_project_for_user(user, project_pk, ProjectPerm.ANNOTATE, with_settings=SETTINGS)
    if parse_id(item_pk) is None:
        raise Http404("No such comparison.")
    # ``Item.objects.filter(project=project, pk=item_pk, kind="comparison").first()``, written out: every submit
    # asks it, and compiling the queryset cost more than running it.
    item = rawrows.one(Item, _ITEM_SQL.format(columns=rawrows.columns(Item, "i")), [item_pk, project.pk, "comparison"])
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
