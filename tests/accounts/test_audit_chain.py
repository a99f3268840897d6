import functools
import itertools

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from accounts import services
from accounts.models import GENESIS_HASH, AuditEvent
from accounts.selectors import audit_chain_verify
from tests.concurrency import run_at_once
from tests.factories import ProjectFactory, UserFactory


def _record(n: int) -> list[AuditEvent]:
    user = UserFactory.create()
    return [
        services.audit_event_record(actor=user, action="test.event", object_type="test", object_id=i, payload={"i": i})
        for i in range(n)
    ]


def _tamper(sql: str, params: list[str | int]) -> None:
    """Change the table behind the services' back, as an attacker with database access would."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A superuser can switch user triggers off for its own session; the chain must still tell.
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)


@pytest.mark.django_db
def test_it_links_each_event_to_the_previous_one() -> None:
    ProjectFactory.create()  # writes project.create first
    events = _record(5)
    chain = list(AuditEvent.objects.order_by("seq"))
    assert chain[0].prev_hash == GENESIS_HASH
    for earlier, later in itertools.pairwise(chain):
        assert later.seq == earlier.seq + 1
        assert later.prev_hash == earlier.hash
    assert all(e.hash == e.compute_hash() for e in chain)
    result = audit_chain_verify()
    assert result.ok
    assert result.checked == len(chain)
    assert result.head_hash == events[-1].hash


@pytest.mark.django_db
def test_it_stores_exactly_what_it_hashed() -> None:
    from datetime import date

    event = services.audit_event_record(actor=None, action="x", payload={"when": date(2026, 1, 2), "n": 1.5})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.payload == {"when": "2026-01-02", "n": 1.5}
    assert stored.compute_hash() == stored.hash
    with pytest.raises(ValueError, match="not JSON compliant"):
        services.audit_event_record(actor=None, action="x", payload={"n": float("nan")})


@pytest.mark.django_db
def test_it_computes_the_same_hash_in_the_database_as_in_python() -> None:
    """On PostgreSQL the append hashes in SQL: the same text, whatever the payload holds."""
    project = ProjectFactory.create()
    user = UserFactory.create(username="zoë")
    tricky = {"quote": '“A” \\ "B"\n', "nested": {"z": [1, 2.5, None, True], "a": "ü€😀"}, "seq": 7, "n": 10**12}
    for payload in ({}, tricky):
        event = services.audit_event_record(
            actor=user, action="t.ünïcode", target=project, project=project, payload=payload
        )
        stored = AuditEvent.objects.get(pk=event.pk)
        assert (stored.seq, stored.prev_hash, stored.hash) == (event.seq, event.prev_hash, event.hash)
        assert stored.compute_hash() == stored.hash
    assert audit_chain_verify().ok


@pytest.mark.django_db
def test_it_finds_an_edited_row_with_audit_verify(capsys: pytest.CaptureFixture[str]) -> None:
    events = _record(6)
    call_command("audit_verify")
    assert "intact: 6 events" in capsys.readouterr().out
    _tamper("UPDATE accounts_auditevent SET payload = %s WHERE id = %s", ['{"i": 999}', events[3].pk])
    with pytest.raises(CommandError, match=f"BROKEN at event #{events[3].seq}: the stored hash does not match"):
        call_command("audit_verify")


@pytest.mark.django_db
def test_it_finds_a_removed_row_with_audit_verify() -> None:
    events = _record(4)
    _tamper("DELETE FROM accounts_auditevent WHERE id = %s", [events[1].pk])
    result = audit_chain_verify()
    assert not result.ok
    assert result.broken_seq == events[2].seq
    assert "missing" in result.reason


@pytest.mark.django_db
def test_it_finds_a_rehashed_row_with_audit_verify() -> None:
    """Recomputing the edited row's own hash still breaks the next link."""
    events = _record(4)
    victim = AuditEvent.objects.get(pk=events[1].pk)
    victim.payload = {"i": 42}
    _tamper(
        "UPDATE accounts_auditevent SET payload = %s, hash = %s WHERE id = %s",
        ['{"i": 42}', victim.compute_hash(), victim.pk],
    )
    result = audit_chain_verify()
    assert not result.ok
    assert result.broken_seq == events[2].seq
    assert "prev_hash" in result.reason


@pytest.mark.django_db
def test_it_refuses_update_and_delete_in_the_database(on_postgres: None) -> None:
    event = _record(1)[0]
    for sql in ("UPDATE accounts_auditevent SET action = 'forged' WHERE id = %s",
                "DELETE FROM accounts_auditevent WHERE id = %s"):  # fmt: skip
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_unbroken_chain_with_concurrent_writers(on_postgres: None) -> None:
    user = UserFactory.create()

    def write(worker: int) -> None:
        for i in range(25):
            services.audit_event_record(actor=user, action="test.concurrent", payload={"w": worker, "i": i})

    assert run_at_once([functools.partial(write, w) for w in range(8)]) == []
    result = audit_chain_verify()
    assert result.ok, result.reason
    assert AuditEvent.objects.filter(action="test.concurrent").count() == 200
