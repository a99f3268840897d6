"""Sending work to the Celery workers once the transaction that records it has committed.

A row that says "queued" and a task that never reached the broker would leave an import, a release build, a
model check or a training job waiting forever, and the person who started it with an error page. Here a
refused publish (broker down, after kombu's own retries) is logged and handed to ``on_refused``, which
records on the row why nothing started; the request that started it answers normally, also when recording
the refusal fails in turn (it is logged).
"""

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

NOT_SENT = (
    "The task could not be sent to a worker ({error}), so nothing started. Start it again once the task broker"
    " is reachable."
)


def send_on_commit(send: Callable[[], object], *, what: str, on_refused: Callable[[str], None]) -> None:
    """Call ``send`` (e.g. ``lambda: task.delay(pk)``) after the commit; if it raises, call ``on_refused``
    with a reason for the person who started ``what``."""

    def publish() -> None:
        try:
            send()
        except Exception as exc:
            logger.warning("%s not sent to a worker", what, exc_info=True)
            try:
                on_refused(NOT_SENT.format(error=f"{type(exc).__name__}: {exc}"))
            except Exception:  # the commit stands: a hook that raises would fail the request and skip later hooks
                logger.exception("%s: recording that it was not sent failed too", what)

    transaction.on_commit(publish)
