"""Access helpers. Each answers 404 both when the object is missing and when access is denied, so a
user can never learn that a project they do not belong to exists."""

from collections.abc import Collection
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.http import Http404, HttpRequest
from knox.models import AuthToken
from rest_framework.request import Request

from accounts import sql
from accounts.models import GroupMapping, Membership, Project, ProjectPerm, User
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


# Permissions are remembered, per user, on a project instance that ``get_project_for_user`` fetched: it lives
# for one request, which may ask again for a tab bar or a second check. Other instances (a project held
# across service calls that change roles) are asked afresh each time.
_MEMO = "_enclave_perms"


def project_perms_for(user: AnyUser, project: Project) -> frozenset[str]:
    """Every project permission the user holds, in one query (site staff hold them all)."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if is_site_staff(user):
        return frozenset(ProjectPerm.ALL)
    memo: dict[int, frozenset[str]] | None = project.__dict__.get(_MEMO)
    if memo is not None and user.pk in memo:
        return memo[user.pk]
    perms = sql.project_perms(user, project.pk)
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
        found = sql.project_with_perms(user, project_id, with_settings)
        project = None
        if found is not None:
            project, perms = found
            project.__dict__[_MEMO] = {user.pk: perms}
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


def get_project_and_row_for_user(
    user: AnyUser,
    pk: int | str,
    perm: str,
    *,
    with_settings: tuple[str, ...],
    also: tuple[str, list[Any]],
) -> tuple[Project, tuple[Any, ...] | None]:
    """``get_project_for_user``, and on PostgreSQL the row of the caller's statement ``also`` read in the same
    round trip (``accounts.sql.project_with_perms_and_row``; its columns NULL when it finds nothing). Elsewhere
    the row is None: not read, the caller reads what it needs itself. 404 as ``get_project_for_user``."""
    project_id = parse_id(pk)
    if connection.vendor != "postgresql" or project_id is None or not (user.is_authenticated and user.is_active):
        return get_project_for_user(user, pk, perm, with_settings=with_settings), None
    found = sql.project_with_perms_and_row(user, project_id, with_settings, also)
    if found is None:
        raise Http404("No such project.")
    project, perms, row = found
    project.__dict__[_MEMO] = {user.pk: perms}
    if perm not in project_perms_for(user, project):
        raise Http404("No such project.")
    return project, row


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


def get_group_mapping_for_staff(staff: AnyUser, pk: int | str) -> GroupMapping:
    require_site_staff(staff)
    return row_or_404(GroupMapping.objects.select_related("project"), pk, "No such group mapping.")


def get_own_api_token(user: AnyUser, token_key: str) -> AuthToken:
    token = AuthToken.objects.select_related("user", "info").filter(user_id=user.pk, token_key=token_key).first()
    if token is None:
        raise Http404("No such token.")
    return token
