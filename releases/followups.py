"""What the releases floor does when a lower floor's row ends (``core.followups``): an import batch that
brought items in has their prompts embedded by the task ``releases.prompt_embeddings_compute`` on the gpu queue,
sent by name once the import has committed. The task embeds every item of the project still without an
embedding by the current model, so a message lost while the broker was away is made up by the next import.

An import, a built release and newly embedded prompts also queue an eval-set drift report of the project's current
eval set (``releases.drift``), when it has one: the drift page and the badges read the latest."""

import logging

from celery import current_app

from accounts.models import Project
from annotation.models import ImportBatch, ImportStatus
from core.dispatch import BrokerUnreachable, reach_broker
from releases.models import Release, ReleaseState

logger = logging.getLogger(__name__)


def on_ended(kind: str, pk: int) -> None:
    if kind == "release":
        _drift_after_build(pk)
        return
    if kind != "import_batch":
        return
    project_id = (
        ImportBatch.objects.filter(pk=pk, status=ImportStatus.DONE, imported_count__gt=0)
        .values_list("project_id", flat=True)
        .first()
    )
    if project_id is None:
        return
    embeddings_requested(project_id)
    drift_report_after(project_id)


def embeddings_requested(project_id: int) -> None:
    """Send the embedding task for the project (by name, to the gpu queue): after an import, and from a build that
    found prompts without a vector, so the next build has them. A broker that is away is logged; the caller goes on."""
    try:
        reach_broker(
            lambda: current_app.send_task("releases.prompt_embeddings_compute", kwargs={"project_id": project_id})
        )
    except BrokerUnreachable:
        logger.warning("prompts of project #%s not sent to be embedded: the broker is away", project_id)


def drift_report_after(project_id: int) -> None:
    """Queue a drift report of the project's current eval set, if it has one (nothing to compare otherwise)."""
    from releases.drift import drift_report_request, eval_rows

    project = Project.objects.filter(pk=project_id).first()
    if project is None or not eval_rows(project, None).exists():
        return
    drift_report_request(actor=None, project=project)


def _drift_after_build(release_id: int) -> None:
    project_id = (
        Release.objects.filter(pk=release_id, state=ReleaseState.BUILT).values_list("project_id", flat=True).first()
    )
    if project_id is not None:
        drift_report_after(project_id)
