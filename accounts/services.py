"""Every write of the accounts app. Each service is atomic and records its audit event through the audit
chain (``accounts.audit``), which every app reaches as ``accounts.services.audit_event_record``."""

from datetime import timedelta
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm
from knox.models import AuthToken

from accounts.audit import audit_event_build as audit_event_build
from accounts.audit import audit_event_record as audit_event_record
from accounts.models import ROLE_PERMISSIONS, ApiTokenInfo, Membership, Project, Role, User
from core.errors import DomainError


def _required(value: str, message: str, *, field: str) -> str:
    """``value`` without surrounding blanks. Raises ``DomainError`` with ``message`` when nothing is left."""
    value = value.strip()
    if not value:
        raise DomainError(message, field=field)
    return value


# --- Projects and memberships ---------------------------------------------------------------------------


def project_create(*, actor: User | None, name: str, description: str = "", admin: User | None = None) -> Project:
    """Create a project; ``admin``, if given, becomes its first project admin.

    Raises ``DomainError`` if the name is taken.
    """
    name = _required(name, "A project needs a name.", field="name")
    with transaction.atomic():
        if Project.objects.filter(name__iexact=name).exists():
            raise DomainError(f"A project named “{name}” already exists.", field="name", status=409)
        project = Project.objects.create(name=name, description=description.strip(), created_by=actor)
        audit_event_record(
            actor=actor,
            action="project.create",
            target=project,
            project=project,
            payload={"name": project.name, "description": project.description},
        )
        if admin is not None:
            membership_add(actor=actor, project=project, user=admin, role=Role.PROJECT_ADMIN)
    return project


def project_update(
    *, actor: User, project: Project, name: str | None = None, description: str | None = None
) -> Project:
    """Rename a project or change its description (``None`` leaves a value as it is).

    Raises ``DomainError`` for an empty name or one another project has.
    """
    changes: dict[str, Any] = {}
    if name is not None:
        name = changes["name"] = _required(name, "A project needs a name.", field="name")
    if description is not None:
        changes["description"] = description.strip()
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        if "name" in changes and Project.objects.filter(name__iexact=name).exclude(pk=project.pk).exists():
            raise DomainError(f"A project named “{name}” already exists.", field="name", status=409)
        before = {field: getattr(project, field) for field in changes}
        changed = {field: value for field, value in changes.items() if before[field] != value}
        if not changed:
            return project
        for field, value in changed.items():
            setattr(project, field, value)
        project.save(update_fields=list(changed))
        audit_event_record(
            actor=actor,
            action="project.update",
            target=project,
            project=project,
            payload={"before": {field: before[field] for field in changed}, "after": changed},
        )
    return project


def _grant_role(membership: Membership) -> None:
    for codename in ROLE_PERMISSIONS[membership.role]:
        assign_perm(codename, membership.user, membership.project)


def _revoke_role(membership: Membership) -> None:
    for codename in ROLE_PERMISSIONS[membership.role]:
        remove_perm(codename, membership.user, membership.project)


def role_check(role: str) -> None:
    if role not in Role.values:
        raise DomainError(f"Unknown role “{role}”. Choose one of: {', '.join(Role.values)}.", field="role")


def _membership_audit(actor: User | None, action: str, membership: Membership, details: dict[str, str]) -> None:
    """Audit a change of membership: the event names the member, then what changed."""
    audit_event_record(
        actor=actor,
        action=action,
        target=membership,
        project=membership.project,
        payload={"user": membership.user.username, **details},
    )


def membership_add(*, actor: User | None, project: Project, user: User, role: str) -> Membership:
    """Make ``user`` a member of ``project`` with ``role`` and grant the role's object permissions.

    Raises ``DomainError`` for an unknown role, an inactive user or an existing membership.
    """
    role_check(role)
    if not user.is_active:
        raise DomainError(f"{user.username} is deactivated and cannot join a project.", field="user", status=409)
    with transaction.atomic():
        if Membership.objects.filter(project=project, user=user).exists():
            raise DomainError(f"{user.username} is already a member of this project.", field="user", status=409)
        membership = Membership.objects.create(project=project, user=user, role=role, added_by=actor)
        _grant_role(membership)
        _membership_audit(actor, "membership.add", membership, {"role": role})
    return membership


def _ensure_an_admin_remains(membership: Membership) -> None:
    if membership.role != Role.PROJECT_ADMIN:
        return
    others = (
        Membership.objects.select_for_update(no_key=True)
        .filter(project_id=membership.project_id, role=Role.PROJECT_ADMIN, user__is_active=True)
        .exclude(pk=membership.pk)
    )
    if not others.exists():
        raise DomainError("A project must keep at least one active project admin.", field="role", status=409)


def membership_change_role(*, actor: User | None, membership: Membership, role: str) -> Membership:
    """Change a member's role and swap their object permissions to match.

    Raises ``DomainError`` for an unknown role or when it would leave the project without an admin.
    """
    role_check(role)
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update(no_key=True).select_related("user", "project").get(pk=membership.pk)
        )
        old_role = membership.role
        if old_role == role:
            return membership
        if role != Role.PROJECT_ADMIN:
            _ensure_an_admin_remains(membership)
        _revoke_role(membership)
        membership.role = role
        membership.save(update_fields=["role"])
        _grant_role(membership)
        _membership_audit(actor, "membership.change_role", membership, {"from": old_role, "to": role})
    return membership


def membership_remove(*, actor: User | None, membership: Membership) -> None:
    """Remove a member and every object permission their role granted.

    Raises ``DomainError`` when it would leave the project without an admin.
    """
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update(no_key=True).select_related("user", "project").get(pk=membership.pk)
        )
        _ensure_an_admin_remains(membership)
        _revoke_role(membership)
        _membership_audit(actor, "membership.remove", membership, {"role": membership.role})
        membership.delete()


# --- Users -----------------------------------------------------------------------------------------------


def user_create(
    *,
    actor: User | None,
    username: str,
    email: str = "",
    display_name: str = "",
    password: str | None = None,
    is_staff: bool = False,
) -> User:
    """Create an account. Without a password it cannot log in until the invite link sets one.

    Raises ``DomainError`` if the username is taken or the password fails the validators.
    """
    username = _required(username, "A username is required.", field="username")
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise DomainError(f"The username “{username}” is taken.", field="username", status=409)
        user = User(username=username, email=email.strip(), display_name=display_name.strip(), is_staff=is_staff)
        if password is None:
            user.set_unusable_password()
        else:
            _validate_password(password, user)
            user.set_password(password)
        user.save()
        audit_event_record(
            actor=actor,
            action="user.create",
            target=user,
            payload={"username": user.username, "is_staff": is_staff, "invited": password is None},
        )
    return user


def user_invite(
    *,
    actor: User,
    username: str,
    email: str = "",
    display_name: str = "",
    project: Project | None = None,
    role: str | None = None,
) -> User:
    """Create an account without a password, optionally as a member of ``project`` with ``role``.

    The caller shows the one-time invite link (``selectors.invite_path``) to hand to the person.
    Raises ``DomainError`` as ``user_create`` and ``membership_add`` do.
    """
    with transaction.atomic():
        user = user_create(actor=actor, username=username, email=email, display_name=display_name)
        if project is not None and role:
            membership_add(actor=actor, project=project, user=user, role=role)
    return user


def _validate_password(password: str, user: User) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages), field="password") from exc


def user_password_set(*, user: User, password: str, via: str) -> User:
    """Set a password (from an invite link or the change-password page) after validating it.

    Raises ``DomainError`` if the password fails the validators.
    """
    _validate_password(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_event_record(actor=user, action="user.password_set", target=user, payload={"via": via})
    return user


def user_set_active(*, actor: User, user: User, active: bool) -> User:
    """Activate or deactivate an account; deactivation also revokes its API tokens.

    Raises ``DomainError`` when staff try to deactivate themselves.
    """
    if user.pk == actor.pk and not active:
        raise DomainError("You cannot deactivate your own account.", status=409)
    with transaction.atomic():
        user.is_active = active
        # An admin's word stands: the directory never reactivates an account an admin deactivated.
        user.directory_deactivated = False
        user.save(update_fields=["is_active", "directory_deactivated"])
        revoked = 0
        if not active:
            revoked = AuthToken.objects.filter(user=user).count()
            AuthToken.objects.filter(user=user).delete()
        audit_event_record(
            actor=actor,
            action="user.activate" if active else "user.deactivate",
            target=user,
            payload={"username": user.username, "tokens_revoked": revoked},
        )
    return user


# --- API tokens ------------------------------------------------------------------------------------------


def api_token_create(
    *, user: User, name: str, days: int, via: str = "self", operator: str = ""
) -> tuple[AuthToken, str]:
    """Create a personal API token; returns the record and the token, which is never shown again.

    ``via`` says how it was asked for: ``"self"`` (the tokens page or API), ``"sign-in"`` (username and
    password at ``/api/v1/auth/token/``) or ``"command"`` (``manage.py api_token_issue``: the audit event has
    no actor and names the ``operator``'s system account). Raises ``DomainError`` for an empty name, a
    lifetime outside 1..365 days or a deactivated account.
    """
    name = _required(name, "Give the token a name, e.g. the script that will use it.", field="name")
    if not 1 <= days <= 365:
        raise DomainError("A token lives between 1 and 365 days.", field="days")
    if not user.is_active:
        raise DomainError(f"{user.username} is deactivated; a deactivated account gets no token.", field="user")
    with transaction.atomic():
        token, raw = AuthToken.objects.create(user=user, expiry=timedelta(days=days))
        ApiTokenInfo.objects.create(token=token, name=name)
        _token_audit(
            None if via == "command" else user,
            "api_token.create",
            token,
            {"name": name, "expires": token.expiry, "owner": user.username, "via": via}
            | ({"operator": operator} if via == "command" else {}),
        )
    return token, raw


def api_token_revoke(*, actor: User, token: AuthToken) -> None:
    """Revoke (delete) a token; requests with it fail from now on."""
    with transaction.atomic():
        _token_audit(actor, "api_token.revoke", token, {"name": token.info.name, "owner": token.user.username})
        token.delete()


def _token_audit(actor: User | None, action: str, token: AuthToken, payload: dict[str, Any]) -> None:
    """Audit a token's creation or revocation: the event names the token by its key, never by the token."""
    audit_event_record(
        actor=actor, action=action, object_type="accounts.apitoken", object_id=token.token_key, payload=payload
    )


def api_token_touch(*, token: AuthToken) -> None:
    """Note when a token was last used, at most once a minute (not audited: it changes no rights)."""
    now = timezone.now()
    ApiTokenInfo.objects.filter(token_id=token.pk).exclude(last_used_at__gt=now - timedelta(minutes=1)).update(
        last_used_at=now
    )
