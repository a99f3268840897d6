"""Calls raced against each other in threads, for the tests of what two requests at once must not break."""

import threading
from collections.abc import Callable, Sequence

from django.db import connection


def run_at_once(calls: Sequence[Callable[[], object]], *, together: bool = False) -> list[BaseException]:
    """Run each call in a thread of its own, on a database connection of its own (closed when it ends), and
    wait for all; with ``together``, each waits at a barrier until all are ready, so they meet in the
    database. Returns what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> None:
        try:
            if together:
                barrier.wait()
            call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
