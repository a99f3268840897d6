"""Local passwords switched off: only the named break-glass site-staff accounts keep theirs, on the login page and
for API sign-in alike; the login page folds the form away when the OIDC provider is the way in."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import Personas
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def passwords_off(settings: Any, personas: Personas) -> Personas:
    settings.PASSWORD_LOGIN = False
    # The annotator is named too, but is not site staff: a break-glass account must be.
    settings.BREAK_GLASS_USERS = ["staff", "annotator"]
    return personas


def _page_sign_in(username: str) -> int:
    return Client().post(reverse("login"), {"username": username, "password": PASSWORD}).status_code


def _api_sign_in(username: str) -> int:
    response = Client().post(
        reverse("api_sign_in"),
        {"username": username, "password": PASSWORD, "name": "t"},
        content_type="application/json",
    )
    return response.status_code


def test_it_lets_only_named_staff_use_a_password_when_passwords_are_off(passwords_off: Personas) -> None:
    assert _page_sign_in("staff") == 302
    assert _api_sign_in("staff") == 201
    for username in ("annotator", "reviewer", "project_admin"):
        assert _page_sign_in(username) == 200  # the form again, with its error
        assert _api_sign_in(username) in (400, 401)


def test_it_keeps_every_password_when_passwords_are_on(personas: Personas) -> None:
    assert _page_sign_in("reviewer") == 302


def test_it_folds_the_form_away_when_only_the_provider_signs_people_in(passwords_off: Personas, settings: Any) -> None:
    settings.OIDC_ISSUER = "https://idp.bank.example/realms/bank"
    settings.OIDC_PROVIDER_NAME = "Bank sign-in"
    page = Client().get(reverse("login")).content.decode()
    assert "Sign in with Bank sign-in" in page
    assert "<details" in page
    assert "Break-glass sign-in" in page
    settings.PASSWORD_LOGIN = True
    page = Client().get(reverse("login")).content.decode()
    assert "Sign in with Bank sign-in" in page
    assert "<details" not in page
    settings.OIDC_ISSUER = ""
    assert "sso-sign-in" not in Client().get(reverse("login")).content.decode()
    # Without a provider its routes answer 404, and nothing is asked of the network.
    assert Client().get(reverse("oidc_authentication_init")).status_code == 404
    assert Client().get(reverse("oidc_authentication_callback")).status_code == 404
