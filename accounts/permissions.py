"""Access helpers. Each answers 404 both when the object is missing and when access is denied, so a
user can never learn that a project they do not belong to exists."""

from collections.abc import Collection

from django.contrib.auth.models import AnonymousUser, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Model
from django.http import Http404, HttpRequest
from guardian.models import GroupObjectPermission, UserObjectPermission
from knox.models import AuthToken
from rest_framework.request import Request

from accounts.models import Membership, Project, ProjectPerm, User
from core import rawrows
from core.http import parse_id, row_or_404

AnyUser = User | AnonymousUser


def request_user(request: HttpRequest | Request) -> User:
    """The signed-in user of a request that login (a page) or authentication (the API) already required."""
    assert isinstance(request.user, User)
    return request.user


def is_site_staff(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def user_has_project_perm(user: AnyUser, project: Project, perm: str) -> bool:
    """Site staff hold every project permission; everyone else through their membership's role."""
    return perm in project_perms_for(user, project)


# The object permissions django-guardian stores for one user on one project, granted to the user or to one
# of their groups: what ``ObjectPermissionChecker.get_perms`` answers with two ORM queries, in one.
_PERMS_SQL = """
SELECT perm.codename FROM {perm} perm JOIN {uop} uop ON uop.permission_id = perm.id
 WHERE uop.user_id = %s AND uop.content_type_id = %s AND uop.object_pk = %s AND perm.content_type_id = %s
UNION
SELECT perm.codename FROM {perm} perm JOIN {gop} gop ON gop.permission_id = perm.id
  JOIN {groups} ug ON ug.group_id = gop.group_id
 WHERE ug.user_id = %s AND gop.content_type_id = %s AND gop.object_pk = %s AND perm.content_type_id = %s
"""

# Permissions are remembered, per user, on a project instance that ``get_project_for_user`` fetched: it lives
# for one request, which may ask again for a tab bar or a second check. Other instances (a project held
# across service calls that change roles) are asked afresh each time.
_MEMO = "_enclave_perms"


def _perms_query(user: AnyUser, project_pk: int | str) -> tuple[str, list[int | str | None]]:
    """``_PERMS_SQL`` for ``user`` on one project, with its parameters."""
    ctype = ContentType.objects.get_for_model(Project).pk
    sql = _PERMS_SQL.format(
        perm=Permission._meta.db_table,
        uop=UserObjectPermission._meta.db_table,
        gop=GroupObjectPermission._meta.db_table,
        groups=User.groups.through._meta.db_table,
    )
    object_pk = str(project_pk)
    return sql, [user.pk, ctype, object_pk, ctype, user.pk, ctype, object_pk, ctype]


def project_perms_for(user: AnyUser, project: Project) -> frozenset[str]:
    """Every project permission the user holds, in one query (site staff hold them all)."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if is_site_staff(user):
        return frozenset(ProjectPerm.ALL)
    memo: dict[int, frozenset[str]] | None = project.__dict__.get(_MEMO)
    if memo is not None and user.pk in memo:
        return memo[user.pk]
    sql, params = _perms_query(user, project.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        perms = frozenset(row[0] for row in cursor.fetchall())
    if memo is not None:
        memo[user.pk] = perms
    return perms


def get_project_for_user(
    user: AnyUser, pk: int | str, perm: str = ProjectPerm.VIEW, *, with_settings: tuple[str, ...] = ()
) -> Project:
    """The project, when ``user`` holds ``perm`` on it; 404 otherwise. ``with_settings`` names one-to-one
    settings rows (``"annotation"``, ``"preferences"``) to read in the same query, for the request's
    services to use instead of reading them again."""
    project_id = parse_id(pk)
    if project_id is None:
        raise Http404("No such project.")
    if connection.vendor == "postgresql" and user.is_authenticated and user.is_active:
        project = _project_with_perms(user, project_id, with_settings)
    else:
        rows = Project.objects.filter(pk=project_id)
        if with_settings:
            rows = rows.select_related(*with_settings)
        project = rows.first()
        if project is not None:
            project.__dict__[_MEMO] = {}
    if project is None or perm not in project_perms_for(user, project):
        raise Http404("No such project.")
    return project


_PROJECT_SQL = "SELECT {columns}, ARRAY({perms}) FROM {table} p {joins} WHERE p.id = %s"


def _project_with_perms(user: User, pk: int, with_settings: tuple[str, ...]) -> Project | None:
    """PostgreSQL: the project, its settings rows and the user's permissions on it in one statement (what the
    queryset and ``project_perms_for`` read in two). Compiling the queryset cost more than running both."""
    parts = [rawrows.columns(Project, "p")]
    joins = []
    related: list[tuple[str, type[Model]]] = []
    for n, name in enumerate(with_settings):
        rel = Project._meta.get_field(name)
        model = rel.related_model
        assert isinstance(model, type)
        assert issubclass(model, Model)
        assert model._meta.pk is not None
        alias = f"s{n}"
        parts.append(rawrows.columns(model, alias))
        joins.append(f"LEFT JOIN {model._meta.db_table} {alias} ON {alias}.{model._meta.pk.column} = p.id")
        related.append((name, model))
    perms, params = _perms_query(user, pk)
    sql = _PROJECT_SQL.format(
        columns=", ".join(parts), perms=perms, table=Project._meta.db_table, joins=" ".join(joins)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, pk])
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
    project.__dict__[_MEMO] = {user.pk: frozenset(row[-1])}
    return project


def get_project_for_any(user: AnyUser, project_pk: int | str, perms: "Collection[str]") -> Project:
    """The project, when ``user`` holds any of ``perms`` on it (a page several roles read); 404 otherwise."""
    project = get_project_for_user(user, project_pk)
    if not project_perms_for(user, project) & set(perms):
        raise Http404("No such project.")
    return project


def get_membership_for_user(user: AnyUser, project_pk: int | str, membership_pk: int | str) -> Membership:
    """A membership of a project whose members ``user`` may manage."""
    project = get_project_for_user(user, project_pk, ProjectPerm.MANAGE_MEMBERS)
    members = Membership.objects.select_related("user", "project").filter(project=project)
    return row_or_404(members, membership_pk, "No such member.")


def require_site_staff(user: AnyUser) -> None:
    if not is_site_staff(user):
        raise Http404("Not found.")


def get_user_for_staff(staff: AnyUser, pk: int | str) -> User:
    require_site_staff(staff)
    return row_or_404(User.objects.all(), pk, "No such user.")


def get_own_api_token(user: AnyUser, token_key: str) -> AuthToken:
    token = AuthToken.objects.select_related("user", "info").filter(user_id=user.pk, token_key=token_key).first()
    if token is None:
        raise Http404("No such token.")
    return token
