"""Access helpers. Each answers 404 both when the object is missing and when access is denied, so a
user can never learn that a project they do not belong to exists."""

from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from guardian.core import ObjectPermissionChecker
from knox.models import AuthToken

from accounts.models import Membership, Project, ProjectPerm, User

AnyUser = User | AnonymousUser


def is_site_staff(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def user_has_project_perm(user: AnyUser, project: Project, perm: str) -> bool:
    """Site staff hold every project permission; everyone else through their membership's role."""
    if not user.is_authenticated or not user.is_active:
        return False
    if is_site_staff(user):
        return True
    return user.has_perm(f"accounts.{perm}", project)


def project_perms_for(user: AnyUser, project: Project) -> set[str]:
    """Every project permission the user holds, in one query (for pages that show many tabs or buttons)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    if is_site_staff(user):
        return set(ProjectPerm.ALL)
    return set(ObjectPermissionChecker(user).get_perms(project))


def get_project_for_user(user: AnyUser, pk: int | str, perm: str = ProjectPerm.VIEW) -> Project:
    project = Project.objects.filter(pk=pk).first() if str(pk).isdigit() else None
    if project is None or not user_has_project_perm(user, project, perm):
        raise Http404("No such project.")
    return project


def get_membership_for_user(user: AnyUser, project_pk: int | str, membership_pk: int | str) -> Membership:
    """A membership of a project whose members ``user`` may manage."""
    project = get_project_for_user(user, project_pk, ProjectPerm.MANAGE_MEMBERS)
    membership = (
        Membership.objects.select_related("user", "project").filter(project=project, pk=membership_pk).first()
        if str(membership_pk).isdigit()
        else None
    )
    if membership is None:
        raise Http404("No such member.")
    return membership


def require_site_staff(user: AnyUser) -> None:
    if not is_site_staff(user):
        raise Http404("Not found.")


def get_user_for_staff(staff: AnyUser, pk: int | str) -> User:
    require_site_staff(staff)
    user = User.objects.filter(pk=pk).first() if str(pk).isdigit() else None
    if user is None:
        raise Http404("No such user.")
    return user


def get_own_api_token(user: AnyUser, token_key: str) -> AuthToken:
    token = AuthToken.objects.select_related("user", "info").filter(user_id=user.pk, token_key=token_key).first()
    if token is None:
        raise Http404("No such token.")
    return token
