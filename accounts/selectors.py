"""Reads of the accounts app: querysets with their joins chosen, and the audit-chain verifier."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.tokens import default_token_generator
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from guardian.shortcuts import get_objects_for_user
from knox.models import AuthToken

from accounts.models import GENESIS_HASH, AuditEvent, GroupMapping, Membership, Project, ProjectPerm, User
from accounts.permissions import AnyUser, is_site_staff


def projects_for_user(user: AnyUser) -> QuerySet[Project]:
    """Projects the user may see, each annotated with ``role`` (None for staff who are not members)
    and ``member_count``."""
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    if is_site_staff(user):
        projects = Project.objects.all()
    else:
        projects = get_objects_for_user(user, f"accounts.{ProjectPerm.VIEW}", klass=Project, accept_global_perms=False)
    role = Membership.objects.filter(project=OuterRef("pk"), user_id=user.pk).values("role")[:1]
    return projects.annotate(role=Subquery(role), member_count=Count("memberships")).order_by("name")


def role_in_project(user: AnyUser, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(project=project, user_id=user.pk).values_list("role", flat=True).first()


def project_members(project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user", "added_by").order_by("user__username")


def users_addable_to(project: Project) -> QuerySet[User]:
    return User.objects.filter(is_active=True).exclude(memberships__project=project).order_by("username")


def users_for_staff() -> QuerySet[User]:
    return User.objects.annotate(project_count=Count("memberships")).order_by("username")


def group_mappings() -> QuerySet[GroupMapping]:
    return GroupMapping.objects.select_related("project", "created_by").order_by("group", "project__name")


def api_tokens_for_user(user: AnyUser) -> QuerySet[AuthToken]:
    return AuthToken.objects.filter(user_id=user.pk).select_related("info").order_by("-created")


def invite_path(user: User) -> str:
    """The one-time link that lets an invited person set their password. It stops working once a
    password is set or after ``PASSWORD_RESET_TIMEOUT``."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("invite_accept", kwargs={"uidb64": uid, "token": token})


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    actor: str = ""
    object_type: str = ""
    since: datetime | None = None
    until: datetime | None = None


def audit_events(*, project: Project | None, filters: AuditFilter) -> QuerySet[AuditEvent]:
    """Events newest first; ``project=None`` means every event (site staff only)."""
    events = AuditEvent.objects.select_related("actor", "project").order_by("-seq")
    if project is not None:
        events = events.filter(project=project)
    if filters.action:
        events = events.filter(action__startswith=filters.action)
    if filters.actor:
        events = events.filter(actor_label__iexact=filters.actor)
    if filters.object_type:
        events = events.filter(object_type=filters.object_type)
    if filters.since:
        events = events.filter(created_at__gte=filters.since)
    if filters.until:
        events = events.filter(created_at__lt=filters.until)
    return events


def audit_actions(project: Project | None) -> list[str]:
    events = AuditEvent.objects.all() if project is None else AuditEvent.objects.filter(project=project)
    return list(events.order_by("action").values_list("action", flat=True).distinct())


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    reason: str = ""


def audit_chain_verify(*, chunk_size: int = 2000) -> AuditVerification:
    """Walk the whole chain in order and report the first broken link.

    A link is broken when its stored hash does not match its content (the row was edited), when its
    ``prev_hash`` does not match the previous event's hash (an event was removed or inserted), or when
    the sequence skips a number. Truncating the newest events cannot be seen from inside the chain;
    compare ``head_seq``/``head_hash`` with a copy kept elsewhere for that.
    """
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size):
        reason = ""
        if event.seq != expected_seq:
            reason = f"sequence jumps from {expected_seq - 1} to {event.seq}: events are missing"
        elif event.prev_hash != expected_prev:
            reason = "prev_hash does not match the previous event's hash: an earlier event was changed or removed"
        elif event.compute_hash() != event.hash:
            reason = "the stored hash does not match the event's content: this event was changed"
        if reason:
            return AuditVerification(False, checked, expected_seq - 1, expected_prev, event.seq, reason)
        checked += 1
        expected_prev = event.hash
        expected_seq += 1
    return AuditVerification(True, checked, expected_seq - 1, expected_prev)
