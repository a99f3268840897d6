"""The audit chain's only writer: ``audit_event_record`` appends one event, linked to the one before by its
hash, inside the caller's transaction; ``auth_event_record`` audits logins, logouts, failures and lockouts.
``accounts.services`` offers both to every app, and ``audit_event_build``: the same event, for a hot-path
statement that appends it itself in the statement that makes the change (``accounts.sql.audit_append_call``)."""

import json
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from accounts import sql
from accounts.models import AuditEvent, Project, User


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
    event = audit_event_build(
        actor=actor,
        action=action,
        target=target,
        object_type=object_type,
        object_id=object_id,
        project=project,
        payload=payload,
    )
    # Inside the caller's transaction no savepoint is needed: an append that fails fails the change it
    # records; alone, it runs in a transaction of its own.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            sql.audit_append(event)
        else:
            sql.audit_append_orm(event)
    return event


def audit_event_build(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    target: Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    project: Project | None = None,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """The event ``audit_event_record`` appends, not yet linked: for a hot-path statement that appends it
    itself (``accounts.sql.audit_append_call``) in the statement that makes the change it records."""
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
