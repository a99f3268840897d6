"""Access helpers of the annotation app: each answers 404 for missing and forbidden alike."""

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user
from annotation.models import Annotation, ImportBatch, Item
from core.http import row_or_404


def get_item_for_user(user: AnyUser, project_pk: int, item_pk: int, perm: str = ProjectPerm.ANNOTATE) -> Item:
    project = get_project_for_user(user, project_pk, perm)
    return row_or_404(Item.objects.filter(project=project).select_related("project"), item_pk, "No such item.")


def get_batch_for_user(user: AnyUser, project_pk: int, batch_pk: int) -> ImportBatch:
    project = get_project_for_user(user, project_pk, ProjectPerm.MANAGE_DATA)
    batches = ImportBatch.objects.filter(project=project).select_related("uploaded_by")
    return row_or_404(batches, batch_pk, "No such import.")


def get_annotation_for_reviewer(user: AnyUser, project_pk: int, annotation_pk: int) -> Annotation:
    project: Project = get_project_for_user(user, project_pk, ProjectPerm.REVIEW)
    annotations = Annotation.objects.filter(item__project=project).select_related("item", "annotator", "rubric_version")
    return row_or_404(annotations, annotation_pk, "No such annotation.")
