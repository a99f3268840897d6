"""Access helpers of the preferences app: each answers 404 for missing and forbidden alike."""

from django.http import Http404

from accounts.models import Project, ProjectPerm, User
from accounts.permissions import (
    AnyUser,
    get_project_and_row_for_user,
    get_project_for_any,
    get_project_for_user,
    project_perms_for,
)
from annotation.models import Item
from core.http import parse_id, row_or_404
from preferences import submit_sql
from preferences.models import Adjudication

# What a judgement or the next comparison reads of its project: fetched with it, in one query.
SETTINGS = ("preferences", "annotation")


def get_comparison_for_user(user: AnyUser, project_pk: int, item_pk: int) -> Item:
    project = get_project_for_user(user, project_pk, ProjectPerm.ANNOTATE, with_settings=SETTINGS)
    if parse_id(item_pk) is None:
        raise Http404("No such comparison.")
    return _comparison_of(project, item_pk)


def get_comparison_for_submit(
    user: AnyUser, project_pk: int, item_pk: int
) -> tuple[Item, submit_sql.ReadBeforeSubmit | None]:
    """``get_comparison_for_user`` for a judgement submit: on PostgreSQL, with what the submit reads first (the
    item's results, the annotator's quality row) in the statement that reads the project; elsewhere that part
    is None (the submit reads it itself)."""
    item_id = parse_id(item_pk)
    if item_id is None or not isinstance(user, User):
        return get_comparison_for_user(user, project_pk, item_pk), None
    also = submit_sql.comparison_for_submit_query(user, parse_id(project_pk) or 0, item_id)
    project, row = get_project_and_row_for_user(
        user, project_pk, ProjectPerm.ANNOTATE, with_settings=SETTINGS, also=also
    )
    if row is None:
        return _comparison_of(project, item_pk), None
    item, seen = submit_sql.comparison_for_submit_row(row)
    if item is None:
        raise Http404("No such comparison.")
    item.project = project
    return item, seen


def _comparison_of(project: Project, item_pk: int) -> Item:
    item = submit_sql.comparison_of_project(project, item_pk)  # written out: every submit asks it
    if item is None:
        raise Http404("No such comparison.")
    item.project = project  # the instance that carries the settings and the permissions already read
    return item


def get_adjudication_for_reviewer(user: AnyUser, project_pk: int, adjudication_pk: int) -> Adjudication:
    project = get_project_for_user(user, project_pk, ProjectPerm.REVIEW)
    adjudications = Adjudication.objects.filter(item__project=project).select_related("item")
    return row_or_404(adjudications, adjudication_pk, "No such adjudication.")


# Who watches quality and agreement: reviewers and data leads (and project admins and site staff, who hold both).
QUALITY_PERMS = frozenset({ProjectPerm.REVIEW, ProjectPerm.MANAGE_DATA})


def get_project_for_quality(user: AnyUser, project_pk: int) -> Project:
    """The project, for who watches quality and agreement: reviewers and data leads; 404 for anyone else."""
    return get_project_for_any(user, project_pk, QUALITY_PERMS)


def may_see_annotator_names(user: AnyUser, project: Project) -> bool:
    """Whether ``user`` sees annotators by name in the project's charts: who may open the quality page, whose
    tables name them. Annotators see the others as "Annotator n"."""
    return bool(project_perms_for(user, project) & QUALITY_PERMS)
