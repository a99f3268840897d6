"""A lost database connection, recognised and put in words, and a fresh connection to record the outcome.

When PostgreSQL ends a backend (``pg_terminate_backend``, a restart, a failover, a network cut), the work
running on it fails with the driver's text ("terminating connection due to administrator command ... server
closed the connection unexpectedly"), which means nothing to the person who started it. Long work on a worker
(an import, a release build, a training job) asks ``connection_lost(exc)``; when it is, the work logs the
driver's text once for operators, records ``lost_connection_reason(what)`` as its failure, and writes that
through ``on_fresh_connection``: the broken connection is dropped first, else the write would fail on it too
and the row would say "running" for ever.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import connection
from django.db.utils import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATEs that mean the session is gone: class 08 (connection exception) and the server ending it (57P01
# admin shutdown or pg_terminate_backend, 57P02 crash shutdown, 57P03 cannot connect now, 57P05 idle session
# timeout).
_SESSION_ENDED = {"57P01", "57P02", "57P03", "57P05"}

_RETRY_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # about half a minute: a restarting server is back by then


def lost_connection_reason(what: str) -> str:
    """The failure reason a person reads: what happened, what was kept, what to do."""
    return f"The database connection was lost during the {what}; nothing was kept. Start it again."


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection to the database is gone (rather than a query that failed on a
    connection that still works): a database error whose SQLSTATE says the session ended, or after which
    the driver reports the connection closed."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _SESSION_ENDED):
            return True
        cause = cause.__cause__
    raw = connection.connection
    return raw is None or bool(getattr(raw, "closed", False)) or bool(getattr(raw, "broken", False))


def describe(exc: BaseException) -> str:
    """The driver's text on one line, for the operators' log."""
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())


def on_fresh_connection(write: Callable[[], T], *, what: str) -> T:
    """Drop the current (broken) connection and call ``write`` on a new one; while the database does not
    answer, try again for about half a minute, then raise the last error. Call it outside any transaction
    (the failed one has rolled back); ``write`` must be atomic or safe to repeat."""
    for wait in (*_RETRY_WAITS, None):
        connection.close()  # outside a transaction: forgets the broken connection; the next query opens one
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            if wait is None or not connection_lost(exc):
                raise
            logger.warning("%s: the database does not answer yet (%s); trying again in %ss", what, describe(exc), wait)
            time.sleep(wait)
    raise AssertionError("unreachable")
