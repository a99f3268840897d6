"""What the releases floor does when a lower floor's row ends (``core.followups``): an import batch that
brought items in has their prompts embedded by the task ``releases.prompt_embeddings_compute`` on the gpu queue,
sent by name once the import has committed. The task embeds every item of the project still without an
embedding by the current model, so a message lost while the broker was away is made up by the next import."""

import logging

from celery import current_app

from annotation.models import ImportBatch, ImportStatus
from core.dispatch import BrokerUnreachable, reach_broker

logger = logging.getLogger(__name__)


def on_ended(kind: str, pk: int) -> None:
    if kind != "import_batch":
        return
    project_id = (
        ImportBatch.objects.filter(pk=pk, status=ImportStatus.DONE, imported_count__gt=0)
        .values_list("project_id", flat=True)
        .first()
    )
    if project_id is None:
        return
    try:
        reach_broker(
            lambda: current_app.send_task("releases.prompt_embeddings_compute", kwargs={"project_id": project_id})
        )
    except BrokerUnreachable:
        logger.warning("prompts of import #%s not sent to be embedded: the broker is away", pk)
