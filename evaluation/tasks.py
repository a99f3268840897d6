"""Celery tasks of the evaluation app."""

from celery import shared_task

from evaluation import services


# On the default queue (only ``evaluation.generation_run`` goes to the gpu workers): a generation run that ends
# sends it; it builds the judging project once every run of the evaluation succeeded.
@shared_task(name="evaluation.evaluation_advance")
def evaluation_advance_task(evaluation_id: int) -> str:
    return str(services.evaluation_advance(evaluation_id=evaluation_id).state)
