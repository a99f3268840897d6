"""Celery tasks of rounds (``default`` queue)."""

from celery import shared_task

from rounds import services


@shared_task(name="rounds.round_advance")
def round_advance_task(round_id: int) -> str:
    """Move one round on as far as its rows allow."""
    return str(services.round_advance(round_id=round_id).state)
