"""Accounts from the organisation's identity provider: group mappings and what they grant.

A directory account (OIDC or LDAP, ``User.directory``) gets its site-staff flag and its *directory* memberships
from its groups through ``GroupMapping`` rows, applied at every sign-in and every re-check
(``directory_account_sync``): a group added grants, a group removed takes away, each change audited. Memberships
an admin made by hand are left alone, and a local account is never touched. When the directory drops or disables
an account (``directory_account_lost``) it is deactivated: sessions end and API tokens are revoked at once, as
when an admin deactivates it; a later sign-in the directory accepts reactivates it, an admin's deactivation stays.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from accounts.audit import audit_event_record
from accounts.models import Directory, GroupMapping, Membership, Project, Role, User
from accounts.services import membership_add, membership_change_role, membership_remove, role_check
from core.errors import DomainError

logger = logging.getLogger(__name__)

# When groups map to several roles in one project, the member gets the one that can do most.
ROLE_STRENGTH = [Role.PROJECT_ADMIN, Role.DATA_LEAD, Role.REVIEWER, Role.APPROVER, Role.ANNOTATOR]


@dataclass
class SyncResult:
    staff: bool
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # a change refused (the project's last admin), left as it was

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed)


# --- Mappings --------------------------------------------------------------------------------------------


def group_mapping_create(*, actor: User, group: str, project: Project | None, role: str = "") -> GroupMapping:
    """Map a directory group to site staff (no project) or to a role in a project.

    Raises ``DomainError`` for an empty group, an unknown role, a role without a project and a mapping that
    exists already."""
    group = group.strip()
    if not group:
        raise DomainError("Name the group as the directory sends it.", field="group")
    if len(group) > 255:
        raise DomainError("A group name has at most 255 characters.", field="group")
    if project is None and role:
        raise DomainError("A role needs a project; without one the group makes site staff.", field="role")
    if project is not None:
        if not role:
            raise DomainError("Choose the role the group gives in the project.", field="role")
        role_check(role)
    with transaction.atomic():
        if GroupMapping.objects.filter(group=group, project=project).exists():
            where = f"in {project.name}" if project else "for site staff"
            raise DomainError(f"The group “{group}” is mapped {where} already.", field="group", status=409)
        mapping = GroupMapping.objects.create(group=group, project=project, role=role, created_by=actor)
        audit_event_record(
            actor=actor,
            action="group_mapping.create",
            target=mapping,
            project=project,
            payload={"group": group, "grants": "site staff" if project is None else role},
        )
    return mapping


def group_mapping_delete(*, actor: User, mapping: GroupMapping) -> None:
    """Remove a mapping; members keep what it granted until their next sign-in or re-check."""
    with transaction.atomic():
        audit_event_record(
            actor=actor,
            action="group_mapping.delete",
            target=mapping,
            project=mapping.project,
            payload={"group": mapping.group, "grants": "site staff" if mapping.project_id is None else mapping.role},
        )
        mapping.delete()


# --- Applying them ---------------------------------------------------------------------------------------


def roles_for_groups(groups: Iterable[str]) -> tuple[bool, dict[int, str]]:
    """What the mappings give these groups: site staff or not, and the strongest role per project id."""
    names = {g for g in groups if g}
    staff = False
    roles: dict[int, str] = {}
    for mapping in GroupMapping.objects.filter(group__in=names):
        if mapping.project_id is None:
            staff = True
            continue
        current = roles.get(mapping.project_id)
        if current is None or ROLE_STRENGTH.index(Role(mapping.role)) < ROLE_STRENGTH.index(Role(current)):
            roles[mapping.project_id] = mapping.role
    return staff, roles


def directory_account_sync(*, user: User, groups: Iterable[str], via: str) -> SyncResult:
    """Make a directory account's staff flag and directory memberships what its groups map to, now.

    ``via`` says which step confirmed the groups (``oidc.sign_in``, ``ldap.recheck``...). Each membership change
    goes through the membership services (object permissions, audit); the sync itself writes one
    ``identity.sync`` event when anything changed. A removal refused because the project would lose its last
    admin is kept and reported, not failed."""
    if user.directory == Directory.LOCAL:
        raise DomainError(f"{user.username} is a local account; the directory does not manage it.", status=409)
    groups = sorted({g for g in groups if g})
    staff, wanted = roles_for_groups(groups)
    result = SyncResult(staff=staff)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        fields = ["directory_checked_at"]
        user.directory_checked_at = timezone.now()
        staff_changed = user.is_staff != staff
        if staff_changed:
            user.is_staff = staff
            fields.append("is_staff")
        user.save(update_fields=fields)
        existing = {m.project_id: m for m in Membership.objects.filter(user=user).select_related("project")}
        for project_id, role in sorted(wanted.items()):
            membership = existing.get(project_id)
            if membership is None:
                project = Project.objects.get(pk=project_id)
                added = membership_add(actor=None, project=project, user=user, role=role)
                Membership.objects.filter(pk=added.pk).update(via_directory=True)
                result.added.append(f"{project.name}: {role}")
            elif membership.via_directory and membership.role != role:
                try:
                    membership_change_role(actor=None, membership=membership, role=role)
                    result.changed.append(f"{membership.project.name}: {membership.role} → {role}")
                except DomainError:
                    result.kept.append(f"{membership.project.name}: {membership.role}")
        for project_id, membership in existing.items():
            if project_id in wanted or not membership.via_directory:
                continue
            try:
                membership_remove(actor=None, membership=membership)
                result.removed.append(f"{membership.project.name}: {membership.role}")
            except DomainError:
                result.kept.append(f"{membership.project.name}: {membership.role}")
        if staff_changed or result.changed_anything or result.kept:
            audit_event_record(
                actor=None,
                action="identity.sync",
                target=user,
                payload={
                    "username": user.username,
                    "via": via,
                    "groups": groups,
                    "site_staff": staff,
                    "added": result.added,
                    "changed": result.changed,
                    "removed": result.removed,
                    "kept_last_admin": result.kept,
                },
            )
    if result.kept:
        logger.warning("directory sync of %s kept the last admin role of: %s", user.username, ", ".join(result.kept))
    return result


def directory_account_lost(*, user: User, via: str, reason: str) -> bool:
    """The directory no longer accepts the account (deleted, disabled, out of the required group): deactivate
    it, end its sessions (an inactive account's session is refused) and revoke its API tokens. Returns whether
    anything changed (an account deactivated already stays as it is)."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if not user.is_active:
            return False
        user.is_active = False
        user.directory_deactivated = True
        user.directory_refresh_token = ""
        user.directory_checked_at = timezone.now()
        user.save(
            update_fields=["is_active", "directory_deactivated", "directory_refresh_token", "directory_checked_at"]
        )
        tokens = AuthToken.objects.filter(user=user)
        revoked = tokens.count()
        tokens.delete()
        audit_event_record(
            actor=None,
            action="identity.lost",
            target=user,
            payload={"username": user.username, "via": via, "reason": reason, "tokens_revoked": revoked},
        )
    logger.warning("%s lost their %s account (%s): deactivated", user.username, user.directory, reason)
    return True


def directory_account_returned(*, user: User, via: str) -> User:
    """A sign-in the directory accepted, for an account the directory had deactivated: active again. An account
    an admin deactivated stays deactivated."""
    if user.is_active or not user.directory_deactivated:
        return user
    with transaction.atomic():
        user.is_active = True
        user.directory_deactivated = False
        user.save(update_fields=["is_active", "directory_deactivated"])
        audit_event_record(
            actor=None, action="identity.returned", target=user, payload={"username": user.username, "via": via}
        )
    return user
