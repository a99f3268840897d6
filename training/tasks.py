"""Celery tasks of the training app; all are routed to the ``gpu`` queue (``training.*``).

A gpu worker runs one job at a time (``--concurrency 1``); ``acks_late`` means a job whose worker dies is
delivered again, and ``training_job_begin`` then fails it instead of training twice."""

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from training import runner, services


@shared_task(name="training.training_job_run", bind=True, acks_late=True)
def training_job_run_task(self: Any, job_id: int) -> str:
    """Supervise one training job to its end; the child process does the training."""
    return runner.run_job(job_id, worker=str(self.request.hostname or "gpu"))


@shared_task(name="training.base_model_validate")
def base_model_validate_task(model_id: int) -> str:
    """Check a registered base model's files on a worker; returns its state."""
    return str(services.base_model_validate(model_id=model_id).state)


@worker_ready.connect
def _prepare_gpu_worker(sender: Any = None, **kwargs: Any) -> None:
    """Only workers that consume the gpu queue warm the training fork server and report their hardware."""
    consumer = sender
    queues = {queue.name for queue in getattr(getattr(consumer, "task_consumer", None), "queues", [])}
    if "gpu" in queues:
        runner.prepare_worker(str(consumer.hostname))
