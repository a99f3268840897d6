"""Recognising a lost database connection: a session the server ended is one, a query the server cancelled
on a live connection is not; and a fresh connection records what happened."""

import psycopg
import pytest
from django.db import connection
from django.db.utils import OperationalError

from core.db import connection_lost, describe, lost_connection_reason, on_fresh_connection


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.django_db(transaction=True)
def test_it_tells_a_lost_connection_from_a_cancelled_query(on_postgres: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 10")
        with pytest.raises(OperationalError) as cancelled:
            cursor.execute("SELECT pg_sleep(2)")
    assert "statement timeout" in str(cancelled.value)
    assert not connection_lost(cancelled.value), "a statement timeout leaves the connection working"
    with connection.cursor() as cursor:
        cursor.execute("RESET statement_timeout")

    db = connection.settings_dict
    own = _backend_pid()
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as other:  # this test's own session, ended from a second one of the same database
        other.execute(
            "SELECT pg_terminate_backend(%s) FROM pg_stat_activity WHERE pid = %s AND datname = %s",
            [own, own, db["NAME"]],
        )
    with connection.cursor() as cursor, pytest.raises(OperationalError) as lost:
        cursor.execute("SELECT 1")
    assert connection_lost(lost.value)
    assert "administrator command" in describe(lost.value)
    assert "\n" not in describe(lost.value), "one line in the log"

    assert on_fresh_connection(_backend_pid, what="test") != own, "a new session answers"
    assert lost_connection_reason("import") == (
        "The database connection was lost during the import; nothing was kept. Start it again."
    )
