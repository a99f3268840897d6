import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken

from accounts import selectors, services
from accounts.models import ApiTokenInfo, AuditEvent, User
from tests.conftest import ClientFor, Personas
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def _login(client: Client, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/login/", {"username": username, "password": password})


def test_it_logs_in_to_the_dashboard_and_audits_it() -> None:
    UserFactory.create(username="ana")
    client = Client()
    response = _login(client, "ana", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert "Your projects" in client.get("/").content.decode()
    event = AuditEvent.objects.get(action="auth.login")
    assert event.actor_label == "ana"


def test_it_locks_an_account_after_repeated_failures() -> None:
    UserFactory.create(username="ana")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _login(client, "ana", "wrong-password")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    locked = _login(client, "ana", "wrong-password")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # While locked, even the right password is refused.
    assert _login(Client(), "ana", PASSWORD).status_code == 429
    assert AuditEvent.objects.filter(action="auth.login_failed", actor_label="ana").count() >= 4
    assert AuditEvent.objects.filter(action="auth.locked_out").exists()


def test_it_ends_idle_sessions() -> None:
    assert settings.SESSION_SAVE_EVERY_REQUEST
    UserFactory.create(username="ana")
    client = Client()
    _login(client, "ana", PASSWORD)
    assert client.session.get_expiry_age() <= settings.SESSION_COOKIE_AGE
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_sets_a_password_once_through_an_invite_link(client_for: ClientFor) -> None:
    staff = UserFactory.create(is_staff=True)
    page = client_for(staff).post("/users/", {"username": "newbie", "display_name": "New Bie"})
    assert page.status_code == 200
    match = re.search(r'value="http://testserver(/invite/[^"]+)"', page.content.decode())
    assert match, "the invite link is shown"
    link = match.group(1)
    newbie = User.objects.get(username="newbie")
    assert not newbie.has_usable_password()

    anonymous = Client()
    opened = anonymous.get(link)
    assert opened.status_code == 302, "the token moves into the session, as in Django's password reset"
    form_page = opened["Location"]
    assert form_page == link.rsplit("/", 2)[0] + "/set-password/"
    assert "Welcome, New Bie" in anonymous.get(form_page).content.decode()
    assert "Welcome" not in Client().get(form_page).content.decode(), "without the link's session, no form"
    weak = anonymous.post(form_page, {"new_password1": "short", "new_password2": "short"})
    assert weak.status_code == 200
    assert "too short" in weak.content.decode()
    good = "a-long-and-unusual-passphrase"
    done = anonymous.post(form_page, {"new_password1": good, "new_password2": good})
    assert done.status_code == 302
    assert _login(Client(), "newbie", good).status_code == 302
    for client in (anonymous, Client()):  # a used link stops working, in the same browser and in another
        again = client.get(link, follow=True)
        assert again.redirect_chain == [(form_page, 302)]
        assert again.status_code == 200, "never a 404, which Django would log with the token in the path"
        assert "This invite link is not valid" in again.content.decode()
        assert "Welcome" not in again.content.decode()
        refused = client.post(form_page, {"new_password1": "another-long-passphrase", "new_password2": "x"})
        assert "This invite link is not valid" in refused.content.decode()
    assert AuditEvent.objects.filter(action="user.password_set", actor_label="newbie", payload__via="invite").exists()


def test_it_answers_a_wrong_invite_link_with_the_not_valid_page_and_no_404() -> None:
    invited = services.user_invite(actor=UserFactory.create(is_staff=True), username="pending")
    good = selectors.invite_path(invited)
    uid = good.split("/")[2]
    browser = Client()
    assert "Welcome" in browser.get(good, follow=True).content.decode()
    for wrong in (f"/invite/{uid}/c8v1x4-0f3e9a/", "/invite/bm90LWFuLWlk/c8v1x4-0f3e9a/", "/invite/%21%21/x/"):
        answer = browser.get(wrong, follow=True)
        assert len(answer.redirect_chain) == 1
        assert answer.status_code == 200
        assert "This invite link is not valid" in answer.content.decode()
    assert "Welcome" not in browser.get(f"/invite/{uid}/set-password/").content.decode(), (
        "a wrong link opened afterwards drops the good token from the session"
    )


def test_it_lets_a_project_admin_invite_straight_into_the_project(personas: Personas, client_for: ClientFor) -> None:
    page = client_for(personas.project_admin).post(
        f"/projects/{personas.project.pk}/members/invite/", {"username": "clinician", "role": "reviewer"}
    )
    assert page.status_code == 200
    assert "Invite link for clinician" in page.content.decode()
    assert personas.project.memberships.get(user__username="clinician").role == "reviewer"


def test_it_shows_api_tokens_once_and_stores_them_as_digests(client_for: ClientFor) -> None:
    user = UserFactory.create(username="scripter")
    page = client_for(user).post("/account/tokens/", {"name": "nightly export", "days": 30})
    raw = re.search(r'id="new-token" aria-label="New token">|value="(enclave_[0-9a-f]+)"', page.content.decode())
    assert raw
    assert raw.group(1)
    token = raw.group(1)
    stored = AuthToken.objects.get(user=user)
    assert stored.digest != token
    assert token not in stored.digest
    assert token not in client_for(user).get("/account/tokens/").content.decode()

    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    me = api.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "scripter"
    assert ApiTokenInfo.objects.get(token=stored).last_used_at is not None

    client_for(user).post(f"/account/tokens/{stored.token_key}/revoke/")
    assert api.get("/api/v1/me/").status_code == 401
    assert list(
        AuditEvent.objects.filter(actor=user, action__startswith="api_token")
        .values_list("action", flat=True)
        .order_by("seq")
    ) == [
        "api_token.create",
        "api_token.revoke",
    ]


def test_it_refuses_expired_and_malformed_tokens() -> None:
    from accounts import services

    user = UserFactory.create()
    token, raw = services.api_token_create(user=user, name="short-lived", days=1)
    AuthToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(minutes=1))
    assert Client(HTTP_AUTHORIZATION=f"Token {raw}").get("/api/v1/me/").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Token enclave_nonsense").get("/api/v1/me/").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Token a b").get("/api/v1/me/").status_code == 401


def test_it_creates_a_token_through_the_api_and_returns_it_once(client_for: ClientFor) -> None:
    user = UserFactory.create()
    client = client_for(user)
    created = client.post("/api/v1/tokens/", {"name": "ci", "days": 7}, content_type="application/json")
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("enclave_")
    assert body["name"] == "ci"
    listed = client.get("/api/v1/tokens/").json()
    assert listed["count"] == 1
    assert "token" not in listed["results"][0]
    bad = client.post("/api/v1/tokens/", {"name": "x", "days": 9999}, content_type="application/json")
    assert bad.status_code == 400
    assert "days" in bad.json()


def test_it_checks_a_token_in_one_query_and_stamps_it_at_most_once_a_minute() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts import services

    user = UserFactory.create()
    token, raw = services.api_token_create(user=user, name="busy script", days=1)
    stale, _ = services.api_token_create(user=user, name="old", days=1)
    AuthToken.objects.filter(pk=stale.pk).update(expiry=timezone.now() - timedelta(days=1))
    api = Client(HTTP_AUTHORIZATION=f"Token {raw}")
    assert api.get("/api/v1/me/").status_code == 200
    first = ApiTokenInfo.objects.get(token=token).last_used_at
    assert first is not None
    assert not AuthToken.objects.filter(pk=stale.pk).exists(), "the user's expired tokens go when one is stamped"
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/v1/me/").status_code == 200
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert writes == [], "stamped less than a minute ago: the request writes nothing"
    assert sum("knox_authtoken" in q["sql"] for q in queries.captured_queries) == 1
    assert ApiTokenInfo.objects.get(token=token).last_used_at == first
    ApiTokenInfo.objects.filter(token=token).update(last_used_at=first - timedelta(minutes=2))
    assert api.get("/api/v1/me/").status_code == 200
    stamped = ApiTokenInfo.objects.get(token=token).last_used_at
    assert stamped is not None
    assert stamped > first - timedelta(minutes=1)
