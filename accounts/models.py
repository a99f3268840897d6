import hashlib
import json
from datetime import UTC
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from knox.models import AuthToken


class Directory(models.TextChoices):
    """Where an account's identity lives: here (a local password), or the organisation's identity provider."""

    LOCAL = "", "Local password"
    OIDC = "oidc", "OIDC provider"
    LDAP = "ldap", "LDAP directory"


class User(AbstractUser):
    """A person. Accounts are deactivated, never deleted, so the audit chain keeps its actors.

    An account made by a sign-in through the organisation's identity provider names it (``directory``) and its
    stable id there (the OIDC ``sub`` or the LDAP entry's DN); its site-staff flag and its directory memberships
    follow the provider's groups through ``GroupMapping`` at every sign-in and re-check."""

    display_name = models.CharField(max_length=150, blank=True)
    directory = models.CharField(max_length=8, choices=Directory.choices, blank=True, default=Directory.LOCAL)
    directory_subject = models.CharField(max_length=255, blank=True)
    # When the directory last confirmed the account and its groups (sign-in, session renewal, re-check).
    directory_checked_at = models.DateTimeField(null=True, blank=True)
    # Deactivated because the directory dropped or disabled the account (not by an admin): a later sign-in that
    # the directory accepts again reactivates it; an admin's deactivation is never undone by the directory.
    directory_deactivated = models.BooleanField(default=False)
    # The OIDC refresh token (when the provider issues one): the re-check renews with it outside a browser.
    directory_refresh_token = models.TextField(blank=True)

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            models.UniqueConstraint(
                fields=["directory", "directory_subject"],
                condition=~models.Q(directory=""),
                name="one_account_per_directory_subject",
            )
        ]

    @property
    def label(self) -> str:
        return self.display_name or self.username


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    DATA_LEAD = "data_lead", "Data lead"
    PROJECT_ADMIN = "project_admin", "Project admin"
    APPROVER = "approver", "Approver"


class ProjectPerm:
    """Object-permission codenames on ``Project``; a membership's role grants a set of them."""

    VIEW = "view_project"
    ANNOTATE = "annotate_project"
    REVIEW = "review_project"
    MANAGE_DATA = "manage_project_data"
    MANAGE_MEMBERS = "manage_project_members"
    VIEW_AUDIT = "view_project_audit"
    RUN_TRAINING = "run_project_training"
    APPROVE_PROMOTION = "approve_project_promotion"

    ALL = (VIEW, ANNOTATE, REVIEW, MANAGE_DATA, MANAGE_MEMBERS, VIEW_AUDIT, RUN_TRAINING, APPROVE_PROMOTION)


ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.ANNOTATOR: (ProjectPerm.VIEW, ProjectPerm.ANNOTATE),
    Role.REVIEWER: (ProjectPerm.VIEW, ProjectPerm.ANNOTATE, ProjectPerm.REVIEW),
    Role.DATA_LEAD: (ProjectPerm.VIEW, ProjectPerm.MANAGE_DATA),
    Role.PROJECT_ADMIN: ProjectPerm.ALL,
    # Approves promotions and rollbacks of the project's deployment targets, and reads what they rest on.
    Role.APPROVER: (ProjectPerm.VIEW, ProjectPerm.APPROVE_PROMOTION),
}


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, related_name="+")

    class Meta:
        ordering = ["name"]
        permissions = [
            ("annotate_project", "Label and rank items"),
            ("review_project", "Review annotations"),
            ("manage_project_data", "Import data, edit rubrics, build and export releases"),
            ("manage_project_members", "Add members and change their roles"),
            ("view_project_audit", "Read the project's audit log"),
            ("run_project_training", "Start and cancel training jobs"),
            ("approve_project_promotion", "Approve promotions and rollbacks of deployed adapters"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    # Granted by a group mapping: the directory's groups add, change and remove it at every sign-in and re-check.
    # A membership an admin made by hand is never touched by the directory.
    via_directory = models.BooleanField(default=False)

    class Meta:
        ordering = ["user__username"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.get_role_display()}"


class GroupMapping(models.Model):
    """One group of the organisation's identity provider (an OIDC ``groups`` claim value, an LDAP group's cn)
    → site staff, or a role in one project. Applied at every sign-in and re-check of a directory account."""

    group = models.CharField(max_length=255)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # Empty with no project: the group makes site staff.
    role = models.CharField(max_length=32, choices=Role.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["group", "project__name"]
        constraints = [
            models.UniqueConstraint(fields=["group", "project"], name="one_mapping_per_group_and_project"),
            models.UniqueConstraint(
                fields=["group"], condition=models.Q(project__isnull=True), name="one_staff_mapping_per_group"
            ),
            models.CheckConstraint(
                condition=(models.Q(project__isnull=True) & models.Q(role=""))
                | (models.Q(project__isnull=False) & ~models.Q(role="")),
                name="mapping_is_staff_or_a_project_role",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group} → {'site staff' if self.grants_staff else f'{self.role} in {self.project}'}"

    @property
    def grants_staff(self) -> bool:
        return self.project_id is None


class ApiTokenInfo(models.Model):
    """What knox's ``AuthToken`` does not hold: the token's name and when it was last used.

    knox stores only a SHA-512 digest of each token; the token itself is shown once, at creation.
    """

    token = models.OneToOneField(AuthToken, on_delete=models.CASCADE, primary_key=True, related_name="info")
    name = models.CharField(max_length=100)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    """One link of the append-only audit chain.

    ``hash`` = sha256(prev_hash + "\\n" + canonical JSON of the event), so changing, removing or
    reordering any event breaks every link after it. On PostgreSQL a trigger refuses UPDATE and DELETE.
    """

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(User, on_delete=models.PROTECT, null=True, related_name="+")
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100, blank=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, null=True, related_name="audit_events")
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["project", "-seq"], name="audit_project_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type}:{self.object_id}"

    def canonical(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "actor_id": self.actor_id,
            "actor": self.actor_label,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "project_id": self.project_id,
            "payload": self.payload,
        }

    def compute_hash(self) -> str:
        body = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(f"{self.prev_hash}\n{body}".encode()).hexdigest()
