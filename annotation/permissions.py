"""Access helpers of the annotation app: each answers 404 for missing and forbidden alike."""

from django.http import Http404

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user
from annotation.models import Annotation, ImportBatch, Item


def get_item_for_user(user: AnyUser, project_pk: int, item_pk: int, perm: str = ProjectPerm.ANNOTATE) -> Item:
    project = get_project_for_user(user, project_pk, perm)
    item = Item.objects.filter(project=project, pk=item_pk).select_related("project").first()
    if item is None:
        raise Http404("No such item.")
    return item


def get_batch_for_user(user: AnyUser, project_pk: int, batch_pk: int) -> ImportBatch:
    project = get_project_for_user(user, project_pk, ProjectPerm.MANAGE_DATA)
    batch = ImportBatch.objects.filter(project=project, pk=batch_pk).select_related("uploaded_by").first()
    if batch is None:
        raise Http404("No such import.")
    return batch


def get_annotation_for_reviewer(user: AnyUser, project_pk: int, annotation_pk: int) -> Annotation:
    project: Project = get_project_for_user(user, project_pk, ProjectPerm.REVIEW)
    annotation = (
        Annotation.objects.filter(item__project=project, pk=annotation_pk)
        .select_related("item", "annotator", "rubric_version")
        .first()
    )
    if annotation is None:
        raise Http404("No such annotation.")
    return annotation
