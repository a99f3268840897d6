"""PostgreSQL faults for the tests: a worker started with its own ``application_name``, whose sessions a test
ends with ``pg_terminate_backend``, only those (of the test database, with that name); and the files under
the data directory, listed before and after to find what a failure left behind."""

import os
from pathlib import Path

from django.db import connection

from tests.workers import test_database_url

WORKER_APPLICATION = f"enclave-fault-worker-{os.getpid()}"


def worker_database_url(application_name: str = WORKER_APPLICATION) -> str:
    """The test database's URL for a worker whose sessions carry ``application_name``."""
    return f"{test_database_url()}?application_name={application_name}"


def terminate_sessions(application_name: str = WORKER_APPLICATION) -> int:
    """End the sessions of the test database named ``application_name`` (never this test's own); how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()",
            [application_name],
        )
        return sum(1 for (ended,) in cursor.fetchall() if ended)


def files_under(root: Path) -> set[str]:
    """Every file under ``root``, as paths relative to it."""
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}
