"""What a round does when a lower floor's row ends (``core.followups``): the open round waiting on that row is
moved on by the task ``rounds.round_advance``, sent by name once the row's end has committed. A broker that is
away loses nothing: the periodic turn (``enclave.periodic``) advances open rounds too."""

import logging

from celery import current_app

from core.dispatch import BrokerUnreachable, reach_broker
from evaluation.models import PromotionRequest
from rounds.models import ENDED_STATES, Round

logger = logging.getLogger(__name__)

FIELD_OF = {
    "generation_run": "generation_run_id",
    "scoring_run": "scoring_run_id",
    "release": "release_id",
    "training_job": "training_job_id",
    "evaluation": "evaluation_id",
}


def waiting_round(kind: str, pk: int) -> int | None:
    """The open round whose current step waits on row ``pk`` of ``kind``, or None."""
    rounds = Round.objects.exclude(state__in=ENDED_STATES)
    if kind == "promotion":
        adapter_id = PromotionRequest.objects.filter(pk=pk).values_list("adapter_id", flat=True).first()
        return rounds.filter(adapter_id=adapter_id).values_list("pk", flat=True).first() if adapter_id else None
    field = FIELD_OF.get(kind)
    return rounds.filter(**{field: pk}).values_list("pk", flat=True).first() if field else None


def on_ended(kind: str, pk: int) -> None:
    round_id = waiting_round(kind, pk)
    if round_id is None:
        return
    try:
        reach_broker(lambda: current_app.send_task("rounds.round_advance", kwargs={"round_id": round_id}))
    except BrokerUnreachable:
        logger.warning("round %s not advanced after %s #%s: the broker is away", round_id, kind, pk)
