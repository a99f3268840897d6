"""Work that runs on a schedule, declared here in one place.

Every worker that consumes the ``default`` queue runs each entry in a thread of its main process, every so
many seconds: no beat process to deploy or forget, so ``manage.py serve`` and the compose file's ``worker``
run the schedule as they are, and it keeps running while every gpu worker is down. With several default
workers each runs it; every entry is safe to run at the same time in several places (it locks the rows it
changes). An entry that fails logs one line and runs again at its next turn.

- ``training_jobs_reap``, every ``TRAINING_REAP_INTERVAL`` s: fail running training jobs whose gpu worker
  went silent past ``TRAINING_HEARTBEAT_TIMEOUT`` as "worker lost" (``training.lifecycle``), and generation
  runs and scoring runs likewise (``evaluation.lifecycle``, ``evaluation.scoring_runs``).
- ``rounds_advance_open``, every ``ROUNDS_ADVANCE_INTERVAL`` s: move open rounds on (``rounds.services``): a
  round's comparisons fully judged start its release; anything a lost follow-up left waiting moves too.

Work that must run once per turn across the site, not once per worker, goes through Celery beat instead
(``beat_schedule``): one ``celery beat`` process (``manage.py serve`` starts it, the compose file's ``beat``
service) sends the task to the ``default`` queue, where one worker runs it.

- ``governance.retention_sweep``, every ``RETENTION_SWEEP_INTERVAL`` s (a day): delete what each project's
  retention policy keeps no longer (``governance.retention``).
"""

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)


def _reap_training_jobs() -> None:
    from training.services import training_jobs_reap

    failed = training_jobs_reap()
    if failed:
        logger.warning("training jobs failed as worker lost: %s", ", ".join(f"#{pk}" for pk in failed))


def _reap_generation_runs() -> None:
    from evaluation.services import generation_runs_reap

    failed = generation_runs_reap()
    if failed:
        logger.warning("generation runs failed as worker lost: %s", ", ".join(f"#{pk}" for pk in failed))


def _reap_scoring_runs() -> None:
    from evaluation.services import scoring_runs_reap

    failed = scoring_runs_reap()
    if failed:
        logger.warning("scoring runs failed as worker lost: %s", ", ".join(f"#{pk}" for pk in failed))


def _advance_rounds() -> None:
    from rounds.services import rounds_advance_open

    rounds_advance_open()


def schedule() -> list[tuple[str, float, Callable[[], None]]]:
    """The entries: name, seconds between runs, what to run."""
    return [
        ("training jobs reap", float(settings.TRAINING_REAP_INTERVAL), _reap_training_jobs),
        ("generation runs reap", float(settings.TRAINING_REAP_INTERVAL), _reap_generation_runs),
        ("scoring runs reap", float(settings.TRAINING_REAP_INTERVAL), _reap_scoring_runs),
        ("rounds advance", float(settings.ROUNDS_ADVANCE_INTERVAL), _advance_rounds),
    ]


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Celery beat's entries. A turn that no worker took before the next one is due expires unsent."""
    interval = float(settings.RETENTION_SWEEP_INTERVAL)
    return {
        "retention sweep": {
            "task": "governance.retention_sweep",
            "schedule": interval,
            "options": {"queue": "default", "expires": interval},
        },
    }


def declare_beat(app: Any) -> None:
    """Give the Celery app its beat schedule once it is configured (settings are read then, not at import)."""

    def configure(sender: Any, **kwargs: Any) -> None:
        sender.conf.beat_schedule = beat_schedule()

    app.on_after_configure.connect(configure, weak=False)


class Every(threading.Thread):
    """Runs one entry every ``seconds`` until stopped, on its own database connection, closed after each run
    so that nothing is held between runs (nor inherited by the pool processes the worker forks)."""

    def __init__(self, name: str, seconds: float, run: Callable[[], None]) -> None:
        super().__init__(name=f"periodic: {name}", daemon=True)
        self.entry, self.seconds, self.work = name, seconds, run
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.seconds):
            try:
                self.work()
            except Exception as exc:  # one line per failed turn (the database restarting), never a traceback storm
                logger.warning("periodic %s failed: %s: %s", self.entry, type(exc).__name__, exc)
            finally:
                connections.close_all()

    def stop(self) -> None:
        self._stopped.set()


_running: list[Every] = []


def connect() -> None:
    """Start the schedule when a default worker is ready, stop it when the worker shuts down."""
    worker_ready.connect(_start, weak=False)
    worker_shutdown.connect(_stop, weak=False)


def _start(sender: Any = None, **kwargs: Any) -> None:
    queues = {queue.name for queue in getattr(getattr(sender, "task_consumer", None), "queues", [])}
    if "default" not in queues or _running:
        return
    for name, seconds, run in schedule():
        thread = Every(name, seconds, run)
        thread.start()
        _running.append(thread)
    logger.info("periodic work started: %s", ", ".join(f"{t.entry} every {t.seconds:g} s" for t in _running))


def _stop(**kwargs: Any) -> None:
    for thread in _running:
        thread.stop()
    _running.clear()
