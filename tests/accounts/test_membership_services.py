import pytest
from guardian.shortcuts import get_perms
from knox.models import AuthToken

from accounts import services
from accounts.models import ROLE_PERMISSIONS, AuditEvent, Membership, ProjectPerm, Role
from core.errors import DomainError
from tests.conftest import Personas
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_it_grants_exactly_the_roles_permissions_on_add(personas: Personas) -> None:
    for user, role in [
        (personas.annotator, Role.ANNOTATOR),
        (personas.reviewer, Role.REVIEWER),
        (personas.data_lead, Role.DATA_LEAD),
        (personas.project_admin, Role.PROJECT_ADMIN),
    ]:
        assert set(get_perms(user, personas.project)) == set(ROLE_PERMISSIONS[role])
    assert get_perms(personas.outsider, personas.project) == []


def test_it_swaps_permissions_when_the_role_changes(personas: Personas) -> None:
    membership = personas.membership(personas.annotator)
    services.membership_change_role(actor=personas.project_admin, membership=membership, role=Role.DATA_LEAD)
    assert set(get_perms(personas.annotator, personas.project)) == {ProjectPerm.VIEW, ProjectPerm.MANAGE_DATA}
    event = AuditEvent.objects.filter(action="membership.change_role").latest("seq")
    assert event.payload == {"user": "annotator", "from": "annotator", "to": "data_lead"}
    assert event.actor == personas.project_admin
    assert event.project == personas.project


def test_it_revokes_every_permission_on_remove(personas: Personas) -> None:
    services.membership_remove(actor=personas.project_admin, membership=personas.membership(personas.reviewer))
    assert get_perms(personas.reviewer, personas.project) == []
    assert not Membership.objects.filter(user=personas.reviewer, project=personas.project).exists()
    assert AuditEvent.objects.filter(action="membership.remove", payload__user="reviewer").exists()


def test_it_refuses_to_remove_or_demote_the_last_admin(personas: Personas) -> None:
    admin_membership = personas.membership(personas.project_admin)
    with pytest.raises(DomainError, match="at least one active project admin"):
        services.membership_remove(actor=personas.staff, membership=admin_membership)
    with pytest.raises(DomainError, match="at least one active project admin"):
        services.membership_change_role(actor=personas.staff, membership=admin_membership, role=Role.ANNOTATOR)
    services.membership_change_role(
        actor=personas.staff, membership=personas.membership(personas.reviewer), role=Role.PROJECT_ADMIN
    )
    services.membership_remove(actor=personas.staff, membership=admin_membership)
    assert Membership.objects.filter(project=personas.project, role=Role.PROJECT_ADMIN).count() == 1


def test_it_refuses_a_second_membership_and_unknown_roles(personas: Personas) -> None:
    with pytest.raises(DomainError, match="already a member"):
        services.membership_add(actor=None, project=personas.project, user=personas.annotator, role=Role.REVIEWER)
    with pytest.raises(DomainError, match="Unknown role"):
        services.membership_add(actor=None, project=personas.project, user=personas.newcomer, role="overlord")
    assert not Membership.objects.filter(user=personas.newcomer).exists()


def test_it_refuses_duplicate_project_names_case_insensitively() -> None:
    ProjectFactory.create(name="Claims")
    with pytest.raises(DomainError, match="already exists"):
        services.project_create(actor=None, name="claims")


def test_it_audits_project_creation_with_its_first_admin() -> None:
    staff = UserFactory.create(is_staff=True)
    admin = UserFactory.create()
    project = services.project_create(actor=staff, name="Mortgages", description="Advice quality", admin=admin)
    actions = list(AuditEvent.objects.filter(project=project).order_by("seq").values_list("action", flat=True))
    assert actions == ["project.create", "membership.add"]
    assert set(get_perms(admin, project)) == set(ProjectPerm.ALL)


def test_it_deactivates_users_and_revokes_their_tokens() -> None:
    staff = UserFactory.create(is_staff=True)
    user = UserFactory.create()
    services.api_token_create(user=user, name="nightly export", days=30)
    services.user_set_active(actor=staff, user=user, active=False)
    user.refresh_from_db()
    assert not user.is_active
    assert not AuthToken.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(action="user.deactivate")
    assert event.payload == {"username": user.username, "tokens_revoked": 1}
    with pytest.raises(DomainError, match="your own account"):
        services.user_set_active(actor=staff, user=staff, active=False)


def test_it_validates_passwords_when_creating_users() -> None:
    with pytest.raises(DomainError) as excinfo:
        services.user_create(actor=None, username="shorty", password="abc")
    assert excinfo.value.field == "password"
    assert "too short" in excinfo.value.message
