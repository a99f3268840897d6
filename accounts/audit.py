"""The audit chain's only writer: ``audit_event_record`` appends one event, linked to the one before by its
hash, inside the caller's transaction; ``auth_event_record`` audits logins, logouts, failures and lockouts.
``accounts.services`` offers both to every app."""

import json
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import GENESIS_HASH, AuditEvent, Project, User

# An arbitrary constant that names the audit chain's advisory lock on PostgreSQL.
_AUDIT_LOCK_KEY = 0x656E636C617665


def _lock_audit_chain() -> None:
    """Serialise appends to the chain until the surrounding transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions start IMMEDIATE (see settings),
    so the write lock is already held and appends are serial.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])


# PostgreSQL takes the chain lock and links and inserts the event in one call of the server-side function
# ``enclave_audit_append`` (migration accounts/0004): hash = sha256(prev_hash + "\n" + body), where the body is
# the canonical JSON the Python side serialised, up to the sequence number, which sorts last among its keys
# ('…,"seq":' then the number then '}'). Inside the function the INSERT runs after the lock with a snapshot of
# its own, so it reads the head the previous holder committed; the lock is held from there to the commit with
# no round trip and no Python work in between. ``AuditEvent.compute_hash`` checks the result (audit_verify).
_APPEND_SQL = """
SELECT * FROM enclave_audit_append(%s::bigint, %s::timestamptz, %s::bigint, %s::text, %s::text, %s::text, %s::text,
                                   %s::bigint, %s::jsonb, %s::text, %s::text)
"""
_SEQ_TAIL = '"seq":0}'


def _append_on_postgresql(event: AuditEvent) -> None:
    event.seq = 0
    body = json.dumps(event.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if not body.endswith(_SEQ_TAIL):  # the canonical form changed: the function would hash another text
        raise RuntimeError("The canonical audit JSON no longer ends with its sequence number.")
    prefix = body[: -len("0}")]
    with connection.cursor() as cursor:
        cursor.execute(
            _APPEND_SQL,
            [
                _AUDIT_LOCK_KEY,
                event.created_at,
                event.actor_id,
                event.actor_label,
                event.action,
                event.object_type,
                event.object_id,
                event.project_id,
                json.dumps(event.payload, ensure_ascii=False),
                prefix,
                GENESIS_HASH,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("The audit append returned nothing.")
    event.pk, event.seq, event.prev_hash, event.hash = row
    event._state.adding = False


def audit_event_record(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    target: Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    project: Project | None = None,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit chain and return it.

    ``target`` fills ``object_type``/``object_id`` from a model instance. The payload is normalised to
    plain JSON first, so what is hashed is exactly what is stored. Raises ``ValueError`` for a payload
    that is not JSON (NaN, sets, objects). Call it inside the service's transaction, last, so the chain
    lock is held only briefly (until the commit).
    """
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or str(target.pk)
    clean_payload = json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder, allow_nan=False))
    real_actor = actor if isinstance(actor, User) else None
    # No user: the platform itself (a worker, the reaper, a build), or a login attempt naming a username.
    actor_label = real_actor.username if real_actor else str(clean_payload.get("username", "(system)"))
    event = AuditEvent(
        created_at=timezone.now(),
        actor=real_actor,
        actor_label=actor_label[:150],
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        project=project,
        payload=clean_payload,
    )
    # Inside the caller's transaction no savepoint is needed: an append that fails fails the change it
    # records; alone, it runs in a transaction of its own.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            _append_on_postgresql(event)
        else:
            _lock_audit_chain()
            last = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
            event.seq = (last["seq"] + 1) if last else 1
            event.prev_hash = last["hash"] if last else GENESIS_HASH
            event.hash = event.compute_hash()
            event.save(force_insert=True)
    return event


def auth_event_record(*, action: str, user: User | None, username: str, ip: str | None) -> None:
    """Audit a login, logout, failed login or lockout."""
    audit_event_record(
        actor=user,
        action=action,
        object_type="accounts.user",
        object_id=str(user.pk) if user else "",
        payload={"username": username, "ip": ip},
    )
