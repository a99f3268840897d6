"""Sign-in against a real LDAP directory (Debian's slapd, started for this module): bind, user search, group
search, group mappings; a group removed and an account dropped in the directory take effect at the next re-check,
for sessions and API tokens alike."""

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import identity, services
from accounts.models import AuditEvent, Directory, Membership, ProjectPerm, Role, User
from tests.accounts.directories import LdapDirectory
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapDirectory]:
    if not shutil.which("slapd", path="/usr/sbin:/usr/bin:/sbin:/bin"):
        message = "slapd is not installed: `make install` installs it (apt-get install slapd ldap-utils)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = LdapDirectory(
        tmp_path_factory.mktemp("slapd"),
        people=[
            ("ada", "ada-directory-password", "Ada Lovelace"),
            ("grace", "grace-directory-password", "Grace Hopper"),
            ("annotator", "a-directory-password", "Not The Local Annotator"),
        ],
        groups={
            "enclave-users": ["ada", "grace", "annotator"],
            "retail-reviewers": ["ada"],
            "retail-annotators": ["ada", "grace"],
            "enclave-admins": ["grace"],
        },
    )
    yield server
    server.stop()


@pytest.fixture
def ldap_on(directory: LdapDirectory, settings, personas: Personas) -> LdapDirectory:  # type: ignore[no-untyped-def]
    for name, value in directory.settings(require_group="enclave-users").items():
        setattr(settings, name, value)
    identity.group_mapping_create(
        actor=personas.staff, group="retail-reviewers", project=personas.project, role=Role.REVIEWER
    )
    identity.group_mapping_create(
        actor=personas.staff, group="retail-annotators", project=personas.project, role=Role.ANNOTATOR
    )
    identity.group_mapping_create(actor=personas.staff, group="enclave-admins", project=None)
    return directory


def _sign_in(client: Client, username: str, password: str) -> int:
    response = client.post(reverse("login"), {"username": username, "password": password})
    return response.status_code


def _age_the_check(user: User) -> None:
    User.objects.filter(pk=user.pk).update(directory_checked_at=timezone.now() - timedelta(hours=1))


def test_it_signs_in_with_the_directory_password_and_maps_the_groups_to_roles(
    ldap_on: LdapDirectory, personas: Personas, client: Client
) -> None:
    assert _sign_in(client, "ada", "ada-directory-password") == 302
    ada = User.objects.get(directory=Directory.LDAP, directory_subject="uid=ada,ou=people,dc=bank,dc=example")
    assert (ada.username, ada.email, ada.display_name) == ("ada", "ada@bank.example", "Ada Lovelace")
    assert not ada.has_usable_password()
    membership = Membership.objects.get(user=ada, project=personas.project)
    # Two groups map into the project: the stronger role wins, and it came from the directory.
    assert (membership.role, membership.via_directory) == (Role.REVIEWER, True)
    assert ada.has_perm(ProjectPerm.REVIEW, personas.project)
    assert not ada.is_staff
    assert client.get(reverse("dashboard")).status_code == 200
    sync = AuditEvent.objects.get(action="identity.sync", object_id=str(ada.pk))
    assert sync.payload["via"] == "ldap.sign_in"
    assert sync.payload["added"] == ["Project A: reviewer"]
    # A wrong password is refused by the directory, and nobody is signed in.
    assert _sign_in(Client(), "ada", "not-her-password") == 200


def test_it_makes_staff_from_a_group_and_never_takes_over_a_local_account_of_the_same_name(
    ldap_on: LdapDirectory, personas: Personas, client: Client
) -> None:
    assert _sign_in(client, "grace", "grace-directory-password") == 302
    assert User.objects.get(username="grace").is_staff
    # "annotator" is a local account here and a directory account there: two people, two accounts.
    assert _sign_in(Client(), "annotator", "a-directory-password") == 302
    local = User.objects.get(pk=personas.annotator.pk)
    assert local.directory == Directory.LOCAL
    from_directory = User.objects.get(directory=Directory.LDAP, directory_subject__startswith="uid=annotator,")
    assert from_directory.username.startswith("annotator-")


def test_it_takes_a_removed_group_away_at_the_next_request_after_the_recheck_interval(
    ldap_on: LdapDirectory, personas: Personas, client: Client
) -> None:
    assert _sign_in(client, "ada", "ada-directory-password") == 302
    ada = User.objects.get(username="ada")
    _, token = services.api_token_create(user=ada, name="script", days=30)
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    ldap_on.remove_from_group("ada", "retail-reviewers")
    try:
        # Within the interval nothing is asked of the directory.
        assert Membership.objects.get(user=ada, project=personas.project).role == Role.REVIEWER
        _age_the_check(ada)
        assert api.get(reverse("api_me")).status_code == 200  # an API token's request re-checks as well
        assert Membership.objects.get(user=ada, project=personas.project).role == Role.ANNOTATOR
        sync = AuditEvent.objects.filter(action="identity.sync", object_id=str(ada.pk)).latest("seq")
        assert sync.payload["via"] == "ldap.recheck"
        assert sync.payload["changed"] == ["Project A: reviewer → annotator"]
    finally:
        ldap_on.add_to_group("ada", "retail-reviewers")


def test_it_signs_out_and_deactivates_an_account_the_directory_dropped(
    ldap_on: LdapDirectory, personas: Personas, client: Client
) -> None:
    assert _sign_in(client, "grace", "grace-directory-password") == 302
    grace = User.objects.get(username="grace")
    _, token = services.api_token_create(user=grace, name="script", days=30)
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    ldap_on.remove_from_group("grace", "enclave-users")
    try:
        _age_the_check(grace)
        response = client.get(reverse("dashboard"))
        assert response.status_code == 302
        assert response["Location"] == reverse("login")
        grace.refresh_from_db()
        assert not grace.is_active
        assert grace.directory_deactivated
        assert api.get(reverse("api_me")).status_code == 401  # the token was revoked with the account
        lost = AuditEvent.objects.get(action="identity.lost", object_id=str(grace.pk))
        assert "AUTH_LDAP_REQUIRE_GROUP" in lost.payload["reason"]
        assert lost.payload["tokens_revoked"] == 1
        # Nor can the account sign in again while the directory says no.
        assert _sign_in(Client(), "grace", "grace-directory-password") == 200
    finally:
        ldap_on.add_to_group("grace", "enclave-users")
    # Back in the group, the directory lets her in again: the directory's deactivation is undone.
    assert _sign_in(Client(), "grace", "grace-directory-password") == 302
    grace.refresh_from_db()
    assert grace.is_active
    assert not grace.directory_deactivated


def test_it_ends_sessions_and_tokens_at_once_when_an_admin_deactivates_and_the_directory_never_undoes_it(
    ldap_on: LdapDirectory, personas: Personas, client: Client
) -> None:
    assert _sign_in(client, "ada", "ada-directory-password") == 302
    ada = User.objects.get(username="ada")
    _, token = services.api_token_create(user=ada, name="script", days=30)
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get(reverse("api_me")).status_code == 200
    services.user_set_active(actor=personas.staff, user=ada, active=False)
    # No interval: the very next request of the session and of the token is refused.
    assert client.get(reverse("dashboard")).status_code == 302
    assert api.get(reverse("api_me")).status_code == 401
    assert _sign_in(Client(), "ada", "ada-directory-password") == 200
    assert not User.objects.get(pk=ada.pk).is_active


def test_it_keeps_an_account_while_the_directory_cannot_be_reached(
    directory: LdapDirectory,
    personas: Personas,
    settings: Any,
    tmp_path: Path,
) -> None:
    for name, value in directory.settings().items():
        setattr(settings, name, value)
    client = Client()
    assert _sign_in(client, "ada", "ada-directory-password") == 302
    ada = User.objects.get(username="ada")
    settings.AUTH_LDAP_SERVER_URI = "ldap://127.0.0.1:9"  # nothing listens there
    _age_the_check(ada)
    assert client.get(reverse("dashboard")).status_code == 200
    ada.refresh_from_db()
    assert ada.is_active
    # Asked again in a minute, not at every request.
    assert ada.directory_checked_at is not None
    assert timezone.now() - ada.directory_checked_at > timedelta(seconds=settings.DIRECTORY_RECHECK_SECONDS - 90)
