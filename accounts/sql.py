"""The accounts app's hand-written SQL: what every API request and every write asks of accounts, each statement
beside its ORM twin (the querysets it stands for, which other databases run and
``tests/accounts/test_sql.py`` compares it with on PostgreSQL).

- a user's permissions on a project (guardian's user and group object permissions in one statement);
- the project with its settings rows and those permissions (PostgreSQL), for every project-scoped request;
- an API token with its user and ``ApiTokenInfo``, for every API request;
- the audit chain's lock and append (PostgreSQL: one call of ``enclave_audit_append``, migration 0004), also
  as a call another app's statement makes itself (``audit_append_call``), so a change and its event are one
  statement.

Written out, they spare these paths the Python time of compiling querysets (``docs/PERFORMANCE.md``). Table
and column names come from the models' ``_meta`` (``core.rawrows.Table``); rows become model instances
through ``core.rawrows``.
"""

import json
import re
from functools import cache
from typing import Any

from django.contrib.auth.models import AnonymousUser, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Model
from guardian.core import ObjectPermissionChecker
from guardian.models import GroupObjectPermission, UserObjectPermission
from knox.models import AuthToken

from accounts.models import GENESIS_HASH, ApiTokenInfo, AuditEvent, Project, User
from core import rawrows

AnyUser = User | AnonymousUser

# --- A user's permissions on a project --------------------------------------------------------------------

# The object permissions django-guardian stores for one user on one project, granted to the user or to one of
# their groups.
_PERMS_SQL = """
SELECT perm.{perm.codename} FROM {perm} perm JOIN {uop} uop ON uop.{uop.permission} = perm.{perm.id}
 WHERE uop.{uop.user} = %s AND uop.{uop.content_type} = %s AND uop.{uop.object_pk} = %s
   AND perm.{perm.content_type} = %s
UNION
SELECT perm.{perm.codename} FROM {perm} perm JOIN {gop} gop ON gop.{gop.permission} = perm.{perm.id}
  JOIN {groups} ug ON ug.{groups.group} = gop.{gop.group}
 WHERE ug.{groups.user} = %s AND gop.{gop.content_type} = %s AND gop.{gop.object_pk} = %s
   AND perm.{perm.content_type} = %s
"""


@cache
def _perms_sql(vendor: str) -> str:
    return _PERMS_SQL.format(
        perm=rawrows.Table(Permission),
        uop=rawrows.Table(UserObjectPermission),
        gop=rawrows.Table(GroupObjectPermission),
        groups=rawrows.Table(User.groups.through),
    )


def perms_query(user: AnyUser, project_pk: int | str) -> tuple[str, list[int | str | None]]:
    """The statement of ``user``'s permissions on one project, with its parameters."""
    ctype = ContentType.objects.get_for_model(Project).pk
    object_pk = str(project_pk)
    return _perms_sql(connection.vendor), [user.pk, ctype, object_pk, ctype, user.pk, ctype, object_pk, ctype]


def project_perms(user: AnyUser, project_pk: int | str) -> frozenset[str]:
    sql, params = perms_query(user, project_pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return frozenset(row[0] for row in cursor.fetchall())


def project_perms_orm(user: User, project: Project) -> frozenset[str]:
    """The twin: what guardian's checker answers (in two queries)."""
    return frozenset(ObjectPermissionChecker(user).get_perms(project))


# --- The project with its settings rows and the user's permissions (PostgreSQL) ----------------------------

_PROJECT_SQL = "SELECT {columns}, ARRAY({perms}){also_columns} FROM {project} p {joins}{also} WHERE p.{project.id} = %s"


def project_with_perms(user: AnyUser, pk: int, with_settings: tuple[str, ...]) -> tuple[Project, frozenset[str]] | None:
    """The project, its one-to-one settings rows named by ``with_settings`` (``"annotation"``,
    ``"preferences"``) and ``user``'s permissions on it, in one statement; None when there is no such project.
    PostgreSQL only (``ARRAY(…)``)."""
    found = project_with_perms_and_row(user, pk, with_settings)
    return None if found is None else found[:2]


def project_with_perms_and_row(
    user: AnyUser, pk: int, with_settings: tuple[str, ...], also: tuple[str, list[Any]] | None = None
) -> tuple[Project, frozenset[str], tuple[Any, ...]] | None:
    """``project_with_perms``, and in the same statement the row of ``also`` (a caller's ``SELECT`` and its
    parameters, joined as ``LEFT JOIN LATERAL``: its columns are NULL when it finds nothing), returned as it
    came (a higher floor decodes it); None when there is no such project. PostgreSQL only."""
    project_table = rawrows.Table(Project)
    parts = [rawrows.columns(Project, "p")]
    joins = []
    related: list[tuple[str, type[Model]]] = []
    for n, name in enumerate(with_settings):
        model = Project._meta.get_field(name).related_model
        assert isinstance(model, type)
        assert issubclass(model, Model)
        assert model._meta.pk is not None
        alias, table = f"s{n}", rawrows.Table(model)
        parts.append(rawrows.columns(model, alias))
        joins.append(
            f"LEFT JOIN {table} {alias} ON {alias}.{getattr(table, model._meta.pk.name)} = p.{project_table.id}"
        )
        related.append((name, model))
    perms, params = perms_query(user, pk)
    also_sql, also_params = also if also is not None else ("", [])
    sql = _PROJECT_SQL.format(
        columns=", ".join(parts),
        perms=perms,
        project=project_table,
        joins=" ".join(joins),
        also_columns=", also.*" if also is not None else "",
        also=f" LEFT JOIN LATERAL ({also_sql}) also ON true" if also is not None else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *also_params, pk])
        row = cursor.fetchone()
    if row is None:
        return None
    start = rawrows.width(Project)
    project = rawrows.instance(Project, row[:start])
    for name, model in related:
        end = start + rawrows.width(model)
        values = row[start:end]
        project._state.fields_cache[name] = None if rawrows.is_null(model, values) else rawrows.instance(model, values)
        start = end
    return project, frozenset(row[start]), tuple(row[start + 1 :])


def project_with_perms_orm(
    user: User, pk: int, with_settings: tuple[str, ...]
) -> tuple[Project, frozenset[str]] | None:
    """The twin: the queryset with its settings rows, then the permissions as guardian reads them."""
    rows = Project.objects.filter(pk=pk)
    if with_settings:
        rows = rows.select_related(*with_settings)
    project = rows.first()
    return None if project is None else (project, project_perms_orm(user, project))


# --- An API token with its user and info -------------------------------------------------------------------

_TOKENS_SQL = """
SELECT {token_columns}, {user_columns}, {info_columns} FROM {token} t JOIN {user} u ON u.{user.id} = t.{token.user}
  LEFT JOIN {info} i ON i.{info.token} = t.{token.digest} WHERE t.{token.token_key} = %s
"""


@cache
def _tokens_sql(vendor: str) -> str:
    return _TOKENS_SQL.format(
        token_columns=rawrows.columns(AuthToken, "t"),
        user_columns=rawrows.columns(User, "u"),
        info_columns=rawrows.columns(ApiTokenInfo, "i"),
        token=rawrows.Table(AuthToken),
        user=rawrows.Table(User),
        info=rawrows.Table(ApiTokenInfo),
    )


def tokens_with_user_and_info(token_key: str) -> list[AuthToken]:
    """The tokens under ``token_key`` with their user and ``ApiTokenInfo`` (None without one) cached."""
    with connection.cursor() as cursor:
        cursor.execute(_tokens_sql(connection.vendor), [token_key])
        rows = cursor.fetchall()
    tokens = []
    token_end = rawrows.width(AuthToken)
    user_end = token_end + rawrows.width(User)
    for row in rows:
        token = rawrows.instance(AuthToken, row[:token_end])
        token.user = rawrows.instance(User, row[token_end:user_end])
        info = row[user_end:]
        token._state.fields_cache["info"] = (
            None if rawrows.is_null(ApiTokenInfo, info) else rawrows.instance(ApiTokenInfo, info)
        )
        tokens.append(token)
    return tokens


def tokens_with_user_and_info_orm(token_key: str) -> list[AuthToken]:
    return list(AuthToken.objects.filter(token_key=token_key).select_related("user", "info"))


# --- The audit chain's lock and append ----------------------------------------------------------------------

# An arbitrary constant that names the audit chain's advisory lock on PostgreSQL.
AUDIT_LOCK_KEY = 0x656E636C617665


def audit_chain_lock() -> None:
    """Serialise appends to the chain until the surrounding transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions start IMMEDIATE (see settings), so
    the write lock is already held and appends are serial.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])


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


def audit_append(event: AuditEvent) -> None:
    """Link ``event`` to the chain's head and insert it (PostgreSQL), setting its seq, hashes and pk."""
    event.seq = 0
    body = json.dumps(event.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if not body.endswith(_SEQ_TAIL):  # the canonical form changed: the function would hash another text
        raise RuntimeError("The canonical audit JSON no longer ends with its sequence number.")
    prefix = body[: -len("0}")]
    params: list[Any] = [
        AUDIT_LOCK_KEY,
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
    ]
    with connection.cursor() as cursor:
        cursor.execute(_APPEND_SQL, params)
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("The audit append returned nothing.")
    event.pk, event.seq, event.prev_hash, event.hash = row
    event._state.adding = False


def audit_append_orm(event: AuditEvent) -> None:
    """The twin, which other databases run: lock, read the head, hash, insert."""
    audit_chain_lock()
    last = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
    event.seq = (last["seq"] + 1) if last else 1
    event.prev_hash = last["hash"] if last else GENESIS_HASH
    event.hash = event.compute_hash()
    event.save(force_insert=True)


# A statement on the hot path may append the event of the change it makes itself, in the same statement (no
# transaction of its own, no round trip between the change and its event): a value only the statement knows
# (the id of the row it inserts, the slot it claims) stands in the event as ``audit_hole(name)`` and is filled
# in, in SQL, into the canonical JSON that is hashed, the stored payload and the object id. Everything else
# is serialised here exactly as ``audit_append`` does.


def audit_hole(name: str) -> str:
    """A value of an event that its statement fills in (NUL-delimited: no stored text can contain one)."""
    return f"\x00{name}\x00"


def _spliced(text: str, fill: dict[str, str], params: dict[str, Any], prefix: str) -> str:
    """``text`` (JSON holding holes) as an SQL expression: its pieces as parameters, each hole (quotes
    included) as the SQL expression ``fill`` gives for it, which must yield that value's JSON text."""
    holes = {json.dumps(audit_hole(name), ensure_ascii=False): expr for name, expr in fill.items()}
    parts = re.split("(" + "|".join(re.escape(h) for h in holes) + ")", text) if holes else [text]
    sql = []
    for n, part in enumerate(parts):
        if n % 2:
            sql.append(f"({holes[part]})")
        else:
            name = f"{prefix}_{len(params)}"
            params[name] = part
            sql.append(f"%({name})s::text")
    return "(" + " || ".join(sql) + ")"


def audit_append_call(event: AuditEvent, fill: dict[str, str], *, prefix: str = "audit") -> tuple[str, dict[str, Any]]:
    """The call of ``enclave_audit_append`` (a function in ``FROM``, returning the event's id, seq, previous
    hash and hash) that appends ``event``, whose values ``audit_hole(name)`` the SQL expressions of ``fill``
    give as JSON text (``to_json(x)::text``), with its named parameters (``prefix``)."""
    event.seq = 0
    body = json.dumps(event.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if not body.endswith(_SEQ_TAIL):
        raise RuntimeError("The canonical audit JSON no longer ends with its sequence number.")
    params: dict[str, Any] = {
        f"{prefix}_lock": AUDIT_LOCK_KEY,
        f"{prefix}_created_at": event.created_at,
        f"{prefix}_actor": event.actor_id,
        f"{prefix}_label": event.actor_label,
        f"{prefix}_action": event.action,
        f"{prefix}_type": event.object_type,
        f"{prefix}_project": event.project_id,
        f"{prefix}_genesis": GENESIS_HASH,
    }
    object_id = _spliced(json.dumps(event.object_id, ensure_ascii=False), fill, params, prefix)
    payload = _spliced(json.dumps(event.payload, ensure_ascii=False), fill, params, prefix)
    prefix_text = _spliced(body[: -len("0}")], fill, params, prefix)
    call = (
        f"enclave_audit_append(%({prefix}_lock)s::bigint, %({prefix}_created_at)s::timestamptz, "
        f"%({prefix}_actor)s::bigint, %({prefix}_label)s::text, %({prefix}_action)s::text, %({prefix}_type)s::text, "
        f"{object_id}::jsonb #>> '{{}}', %({prefix}_project)s::bigint, {payload}::jsonb, {prefix_text}, "
        f"%({prefix}_genesis)s::text)"
    )
    return call, params


def audit_body_around(event: AuditEvent, name: str) -> tuple[str, str]:
    """The canonical JSON ``enclave_audit_append`` hashes (up to the sequence number) before and after the one
    hole ``name`` of ``event``, for a server-side function that fills it in (``to_json(value)::text``)."""
    event.seq = 0
    body = json.dumps(event.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if not body.endswith(_SEQ_TAIL):
        raise RuntimeError("The canonical audit JSON no longer ends with its sequence number.")
    token = json.dumps(audit_hole(name), ensure_ascii=False)
    head, hole, tail = body[: -len("0}")].partition(token)
    if not hole or token in tail:
        raise RuntimeError(f"The audit event holds the hole {name!r} other than once.")
    return head, tail
