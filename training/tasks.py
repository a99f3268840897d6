"""Celery tasks of the training app; all are routed to the ``gpu`` queue (``training.*``). A gpu worker runs
one job at a time (solo pool)."""

import logging
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_ready
from celery.worker.request import Request

from training import merge_runner, merging, runner, services, tracking

logger = logging.getLogger(__name__)


class AcknowledgedOnReceipt(Request):
    """Acknowledges the message the moment the worker takes the task. Celery's own early ack is queued for the
    worker's event loop, which a solo pool blocks until the task returns: the broker would hold the delivery
    for the whole job and, were the worker killed, hand it out again once the visibility timeout passed."""

    def acknowledge(self) -> None:
        if not self.acknowledged:
            self.message.ack_log_error(logger, self.connection_errors)
            self.acknowledged = True


class TrainingRunTask(Task):
    """How a training run is delivered. Acknowledged on receipt, not late (the settings' default): a job is
    never delivered again and trained twice, and the broker holds nothing for it while it runs. A worker lost
    mid-job (SIGKILL, a crash, the machine gone) is noticed by its silence instead: the reaper, which the
    default workers run every ``TRAINING_REAP_INTERVAL`` s (``enclave.periodic``), fails a running job whose
    heartbeat is older than ``TRAINING_HEARTBEAT_TIMEOUT`` as "worker lost", and "Run again" trains it anew.
    With ``acks_late`` the message would wait in the broker until its visibility timeout (a day on Redis) and
    come back only to be refused; ``reject_on_worker_lost`` means nothing to a solo pool, which has no pool
    child to lose."""

    Request = "training.tasks:AcknowledgedOnReceipt"
    acks_late = False
    reject_on_worker_lost = False


@shared_task(name="training.training_job_run", bind=True, base=TrainingRunTask)
def training_job_run_task(self: TrainingRunTask, job_id: int) -> str:
    """Supervise one training job to its end; the child process does the training."""
    return runner.run_job(job_id, worker=str(self.request.hostname or "gpu"))


# Acknowledged late, as the settings say: checking files is harmless to repeat if its worker died and it comes back.
@shared_task(name="training.base_model_validate")
def base_model_validate_task(model_id: int) -> str:
    """Check a registered base model's files on a worker; returns its state ("deleted" if it is gone)."""
    model = services.base_model_validate(model_id=model_id)
    return str(model.state) if model is not None else "deleted"


# On the default queue (the settings route it there), acknowledged late: a task redelivered after its worker died
# finds the run by its job tag and logs it once.
@shared_task(name="training.training_job_mlflow_log")
def training_job_mlflow_log_task(job_id: int) -> str:
    """Log an ended job's run to the MLflow tracking server; returns its state ("skipped": nothing queued)."""
    row = tracking.training_job_mlflow_log(job_id=job_id)
    return str(row.state) if row is not None else "skipped"


@shared_task(name="training.merged_model_build", bind=True, base=TrainingRunTask)
def merged_model_build_task(self: TrainingRunTask, merged_id: int) -> str:
    """Merge an adapter into its base model; the child process merges. Delivered as a training run: never twice."""
    return merge_runner.run_merge(merged_id, worker=str(self.request.hostname or "gpu"))


@worker_ready.connect
def _prepare_gpu_worker(sender: Any = None, **kwargs: Any) -> None:
    """Only workers that consume the gpu queue warm the training fork server and report their hardware."""
    consumer = sender
    queues = {queue.name for queue in getattr(getattr(consumer, "task_consumer", None), "queues", [])}
    if "gpu" in queues:
        runner.prepare_worker(str(consumer.hostname))
        merging.merged_models_fail_orphans(worker=str(consumer.hostname))
        merge_runner.remove_work_of_ended_merges()
