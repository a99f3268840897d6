"""Celery tasks of the evaluation app: ``evaluation.generation_run`` and ``evaluation.scoring_run`` are routed to
the ``gpu`` queue (settings' ``CELERY_TASK_ROUTES``) and delivered as a training run is: acknowledged on
receipt, never twice; ``evaluation.evaluation_advance`` runs on the default queue."""

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.db import close_old_connections

from evaluation import runner, scoring_runner, services
from training.tasks import TrainingRunTask

logger = logging.getLogger(__name__)


@shared_task(name="evaluation.generation_run", bind=True, base=TrainingRunTask)
def generation_run_task(self: TrainingRunTask, run_id: int) -> str:
    """Supervise one generation run to its end; the child process generates."""
    return runner.run_generation(run_id, worker=str(self.request.hostname or "gpu"))


@shared_task(name="evaluation.scoring_run", bind=True, base=TrainingRunTask)
def scoring_run_task(self: TrainingRunTask, run_id: int) -> str:
    """Supervise one scoring run to its end; the child process scores."""
    return scoring_runner.run_scoring(run_id, worker=str(self.request.hostname or "gpu"))


# On the default queue: a generation run that ends sends it; it builds the judging project once every run of the
# evaluation succeeded.
@shared_task(name="evaluation.evaluation_advance")
def evaluation_advance_task(evaluation_id: int) -> str:
    return str(services.evaluation_advance(evaluation_id=evaluation_id).state)


@worker_ready.connect
def _prepare_gpu_worker(sender: Any = None, **kwargs: Any) -> None:
    """A gpu worker that starts fails the generation and scoring runs it was running and removes what they left
    behind."""
    queues = {queue.name for queue in getattr(getattr(sender, "task_consumer", None), "queues", [])}
    if "gpu" not in queues:
        return
    close_old_connections()
    try:
        failed = services.generation_runs_fail_orphans(worker=str(sender.hostname))
        if failed:
            logger.warning("generation runs failed as worker lost: %s", ", ".join(f"#{pk}" for pk in failed))
        failed = services.scoring_runs_fail_orphans(worker=str(sender.hostname))
        if failed:
            logger.warning("scoring runs failed as worker lost: %s", ", ".join(f"#{pk}" for pk in failed))
        runner.remove_work_of_ended_runs()
        scoring_runner.remove_work_of_ended_runs()
    finally:
        close_old_connections()
