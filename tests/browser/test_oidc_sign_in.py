"""Sign-in through a real OIDC provider (django-oauth-toolkit in a process of its own, started for this module),
in a real browser: the button, the provider's login, the way back; group mappings at sign-in, a removed group and
a disabled account taken into account when the session is renewed at the provider; API tokens renewed with the
refresh token; an admin's deactivation ending the session at once."""

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import identity, services
from accounts.models import AuditEvent, Directory, Membership, Role, User
from tests.accounts.directories import IdentityProvider
from tests.conftest import Personas, make_personas

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE: list[dict[str, Any]] = [
    {"username": "lena", "password": "lena-provider-password", "email": "lena@bank.example", "groups": ["retail"]},
    {"username": "omar", "password": "omar-provider-password", "email": "omar@bank.example", "groups": ["retail"]},
    {"username": "mara", "password": "mara-provider-password", "email": "mara@bank.example", "groups": ["admins"]},
]


@pytest.fixture(scope="module")
def provider(live_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:  # type: ignore[no-untyped-def]
    port = live_server.url.rsplit(":", 1)[1]
    server = IdentityProvider(
        tmp_path_factory.mktemp("idp"),
        redirect_uris=[f"http://{host}:{port}/oidc/callback/" for host in ("localhost", "127.0.0.1")],
        users=PEOPLE,
    )
    yield server
    server.stop()


@pytest.fixture
def oidc(provider: IdentityProvider, settings):  # type: ignore[no-untyped-def]
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    personas = make_personas()
    identity.group_mapping_create(actor=personas.staff, group="retail", project=personas.project, role=Role.REVIEWER)
    identity.group_mapping_create(actor=personas.staff, group="admins", project=None)
    for person in PEOPLE:
        provider.set_groups(person["username"], person["groups"])
        provider.set_active(person["username"], True)
    return personas


def _sign_in(page: Any, username: str) -> None:
    password = next(p["password"] for p in PEOPLE if p["username"] == username)
    page.goto("/login/")
    page.click("#sso-sign-in")
    page.wait_for_selector("text=Test identity provider")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Your projects')")


def _renew_now(settings: Any) -> None:
    """Let the session's id token age past the renewal interval (two seconds, set before sign-in)."""
    time.sleep(settings.OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS + 0.5)


def test_it_signs_in_through_the_provider_and_follows_its_groups_when_the_session_is_renewed(
    oidc: Personas,
    provider: IdentityProvider,
    page: Any,
    settings: Any,
) -> None:
    settings.OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = 2
    _sign_in(page, "lena")
    lena = User.objects.get(directory=Directory.OIDC, username="lena")
    assert lena.email == "lena@bank.example"
    assert not lena.has_usable_password()
    assert lena.directory_refresh_token
    membership = Membership.objects.get(user=lena, project=oidc.project)
    assert (membership.role, membership.via_directory) == (Role.REVIEWER, True)
    assert page.locator("main").get_by_role("link", name="Project A", exact=True).count() >= 1

    # The provider's admins take her out of the group: the renewed session no longer has the project.
    provider.set_groups("lena", [])
    _renew_now(settings)
    page.goto("/")
    page.wait_for_selector("h1:has-text('Your projects')")
    assert not Membership.objects.filter(user=lena, project=oidc.project).exists()
    assert page.locator("main").get_by_role("link", name="Project A", exact=True).count() == 0
    sync = AuditEvent.objects.filter(action="identity.sync", object_id=str(lena.pk)).latest("seq")
    assert sync.payload["removed"] == ["Project A: reviewer"]

    # Disabled at the provider: the next renewal is refused there, and the session ends here.
    provider.set_active("lena", False)
    _renew_now(settings)
    page.goto("/")
    page.wait_for_selector("text=no longer gives you access")
    assert page.url.endswith("/login/?sso=failed")
    page.goto("/")
    page.wait_for_selector("#sso-sign-in")  # signed out: the login page again


def test_it_renews_an_api_token_with_the_refresh_token_and_deactivates_an_account_the_provider_disabled(
    oidc: Personas,
    provider: IdentityProvider,
    page: Any,
) -> None:
    _sign_in(page, "omar")
    omar = User.objects.get(username="omar")
    _, token = services.api_token_create(user=omar, name="script", days=30)
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    stale = timezone.now() - timedelta(hours=1)

    provider.set_groups("omar", ["retail", "admins"])
    User.objects.filter(pk=omar.pk).update(directory_checked_at=stale)
    assert api.get(reverse("api_me")).status_code == 200
    omar.refresh_from_db()
    assert omar.is_staff  # the renewal brought the new group

    provider.set_active("omar", False)
    User.objects.filter(pk=omar.pk).update(directory_checked_at=stale)
    assert api.get(reverse("api_me")).status_code == 401
    omar.refresh_from_db()
    assert not omar.is_active
    assert omar.directory_deactivated
    lost = AuditEvent.objects.get(action="identity.lost", object_id=str(omar.pk))
    assert lost.payload["via"] == "oidc.recheck"
    assert lost.payload["reason"] == "invalid_grant"
    # The browser session of the deactivated account is over too.
    page.goto("/")
    page.wait_for_selector("#sso-sign-in")


def test_it_ends_the_session_at_once_when_an_admin_deactivates_and_refuses_the_next_sign_in(
    oidc: Personas,
    provider: IdentityProvider,
    page: Any,
) -> None:
    _sign_in(page, "mara")
    mara = User.objects.get(username="mara")
    assert mara.is_staff  # the "admins" group
    services.user_set_active(actor=oidc.staff, user=mara, active=False)
    page.goto("/")
    page.wait_for_selector("#sso-sign-in")
    # The provider still knows her, but Enclave does not let a deactivated account back in.
    page.click("#sso-sign-in")
    page.wait_for_selector("text=no longer gives you access")
    assert not User.objects.get(pk=mara.pk).is_active
