"""Sending work to the Celery workers once the transaction that records it has committed, and knowing, per
process, whether the task broker (and the cache beside it: one Redis in production) answers.

A row that says "queued" and a task that never reached the broker would leave an import, a release build, a
model check or a training job waiting forever, and the person who started it with an error page. Here a
refused publish (broker down, after kombu's own retries) is handed to ``on_refused``, which records on the row
why nothing started; the request that started it answers normally, also when recording the refusal fails in
turn (it is logged).

A broker that goes away is logged once per process, without a traceback, and once more when it answers again
(``BrokerHealth``): under load every request would otherwise log the same outage. Whoever calls the broker or
the cache through ``reach_broker`` gets ``BrokerUnreachable`` and decides what the refusal means for its work
(fail it with the reason, leave it for a worker to make up once the broker is back, show a figure as unknown).
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import kombu.exceptions
import redis.exceptions
from django.db import transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOT_SENT = (
    "The task could not be sent to a worker ({error}), so nothing started. Start it again once the task broker"
    " is reachable."
)

# What a broker or cache that is away raises: kombu wraps the transport's errors once its publish retries are
# spent; Django's Redis cache lets redis-py's through; the embedded (filesystem) broker raises OSError.
BROKER_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


class BrokerUnreachable(Exception):
    """The task broker or the cache did not answer; the outage is already logged (once) and counted."""


class BrokerHealth:
    """This process's view of the broker: the first refusal logs one warning (no traceback), later ones are
    counted silently, and the first answer after them logs how long it was away and how many calls it
    refused meanwhile. A call is evidence only of the state after it started: an answer to a call sent before
    the outage was noticed does not end it, and a refusal of a call sent before the broker was back does not
    start a new one (both happen at the edges, with calls in flight on other threads). Thread-safe; an answer
    while all is well costs one attribute read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._up_since = float("-inf")
        self._refused = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def refused(self, error: BaseException, *, started: float | None = None) -> None:
        with self._lock:
            if self._down_since is not None:
                self._refused += 1
                return
            if started is not None and started < self._up_since:
                return  # sent while it was still away: that outage is over and logged
            self._down_since, self._refused = time.monotonic(), 1
        logger.warning(
            "Task broker and cache unreachable from process %s (%s: %s); what is sent meanwhile fails with its "
            "reason or is made up once it is back; further refusals are counted, not logged, until it answers.",
            os.getpid(), type(error).__name__, error,
        )  # fmt: skip

    def answered(self, *, started: float | None = None) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None or (started is not None and started < self._down_since):
                return  # sent before the outage was noticed: no news of the broker now
            now = time.monotonic()
            away, refused = now - self._down_since, self._refused
            self._down_since, self._up_since, self._refused = None, now, 0
        logger.warning(
            "Task broker and cache reachable again from process %s after %.1f s; %s calls refused meanwhile.",
            os.getpid(), away, f"{refused:,}",
        )  # fmt: skip


broker_health = BrokerHealth()


def reach_broker(call: Callable[[], T]) -> T:
    """``call()`` (a publish or a cache operation), with its outcome told to ``broker_health``. Raises
    ``BrokerUnreachable`` when the broker or cache is away; any other error passes through unchanged."""
    started = time.monotonic()
    try:
        result = call()
    except BROKER_ERRORS as exc:
        broker_health.refused(exc, started=started)
        raise BrokerUnreachable(f"{type(exc).__name__}: {exc}") from exc
    broker_health.answered(started=started)
    return result


def send_on_commit(send: Callable[[], object], *, what: str, on_refused: Callable[[str], None]) -> None:
    """Call ``send`` (e.g. ``lambda: task.delay(pk)``) after the commit; if it raises, call ``on_refused``
    with a reason for the person who started ``what``."""

    def publish() -> None:
        try:
            reach_broker(send)
            return
        except BrokerUnreachable as exc:  # logged once per outage by broker_health
            error = str(exc)
        except Exception as exc:  # not the broker being away: a fault worth its traceback
            logger.warning("%s not sent to a worker", what, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
        try:
            on_refused(NOT_SENT.format(error=error))
        except Exception:  # the commit stands: a hook that raises would fail the request and skip later hooks
            logger.exception("%s: recording that it was not sent failed too", what)

    transaction.on_commit(publish)
