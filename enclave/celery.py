"""The Celery application. Queues and routes are declared in settings (``CELERY_*``).

Workers: ``celery -A enclave worker -Q default`` for imports and builds, ``-Q gpu`` for training.
Tasks never run eagerly outside tests; if the broker is down, publishing raises. The default workers also run
the periodic work of ``enclave.periodic``; ``celery -A enclave beat`` sends its site-wide schedule.
"""

import logging
import os
from typing import Any

from celery import Celery, bootsteps
from celery.worker.consumer import Consumer

from enclave import periodic

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enclave.settings.local")

logger = logging.getLogger(__name__)

app = Celery("enclave")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
periodic.connect()
periodic.declare_beat(app)


class BrokerLossConsumer(Consumer):
    """Celery's consumer, surviving a broker that goes away while it holds unacknowledged tasks (with
    ``acks_late``: any task running, or waiting for its countdown as every debounced agreement run does).
    kombu 5.7 then closes the broken connection's channel a second time after the transport was let go;
    putting the unacknowledged messages back fails with ``AttributeError`` (``'NoneType' object has no
    attribute 'hostname'``), which Celery treats as unrecoverable: the worker exited on every Redis restart.
    Here the consumer reconnects instead. A running task finishes (its ack is lost); a message the worker held
    stays in Redis's unacknowledged set if Redis kept it, and is delivered again after the visibility timeout;
    agreement runs are made up on reconnection anyway (``SendOwedWork``)."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            logger.info("broker connection lost with unacknowledged tasks; reconnecting")


class SendOwedWork(bootsteps.StartStopStep):
    """Each time a ``default`` worker connects to the broker (at start, and again after the broker was away),
    send the work asked for while the broker refused it or lost with it: the agreement runs of projects whose
    figures do not count their judgements."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        if "default" not in parent.app.amqp.queues.consume_from:
            return
        from django.db import connections

        from preferences.agreement_runs import agreement_catch_up

        try:
            agreement_catch_up()
        except Exception:  # never keep the worker from consuming: the next connection tries again
            logger.exception("owed work not sent")
        finally:
            connections.close_all()  # a prefork parent keeps no connection its children would inherit


app.conf.worker_consumer = "enclave.celery:BrokerLossConsumer"
app.steps["consumer"].add(SendOwedWork)
