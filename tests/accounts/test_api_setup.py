"""Setting Enclave up without a browser: sign-in for a token (under the login page's lockout), the operator's
token command, projects, users and invitations, and the API's front door."""

import io
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken

from accounts.models import AuditEvent, Membership, Project, Role, User
from tests.conftest import ClientFor, Personas
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def _json(client: Client, method: str, path: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
    return getattr(client, method)(path, data=json.dumps(body), content_type="application/json")


def _sign_in(username: str, password: str, **extra: object):  # type: ignore[no-untyped-def]
    return _json(Client(), "post", "/api/v1/auth/token/", {"username": username, "password": password, **extra})


# --- Sign-in ---------------------------------------------------------------------------------------------


def test_it_signs_in_for_a_token_that_works_and_audits_it_like_a_page_login() -> None:
    UserFactory.create(username="ana")
    response = _sign_in("ana", PASSWORD, name="nightly export", days=7)
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "nightly export"
    assert body["token"].startswith("enclave_")
    expiry = AuthToken.objects.get(token_key=body["token_key"]).expiry
    assert timedelta(days=6, hours=23) < expiry - timezone.now() <= timedelta(days=7)
    me = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert me.status_code == 200
    assert me.json()["username"] == "ana"
    assert AuditEvent.objects.filter(action="auth.login", actor_label="ana").count() == 1
    created = AuditEvent.objects.get(action="api_token.create")
    assert created.payload["via"] == "sign-in"
    assert created.actor_label == "ana"
    assert User.objects.get(username="ana").last_login is not None
    browser = Client()
    _json(browser, "post", "/api/v1/auth/token/", {"username": "ana", "password": PASSWORD})
    assert browser.get("/api/v1/me/").status_code in {401, 403}  # a token, not a signed-in session


def test_it_refuses_wrong_credentials_and_deactivated_accounts_with_401_and_counts_the_failure() -> None:
    UserFactory.create(username="ana")
    UserFactory.create(username="gone", is_active=False)
    wrong = _sign_in("ana", "not-the-password")
    assert wrong.status_code == 401
    assert wrong["Content-Type"] == "application/json"
    assert "Wrong username or password" in wrong.json()["detail"]
    assert _sign_in("gone", PASSWORD).status_code == 401
    assert _sign_in("nobody", PASSWORD).status_code == 401
    assert AuditEvent.objects.filter(action="auth.login_failed", payload__username="ana").count() == 1
    assert not AuthToken.objects.exists()


def test_it_refuses_bad_input_naming_the_field() -> None:
    UserFactory.create(username="ana")
    response = _sign_in("ana", PASSWORD, days=400)
    assert response.status_code == 400
    assert "days" in response.json()
    assert _json(Client(), "post", "/api/v1/auth/token/", {"username": "ana"}).json().keys() == {"password"}


def test_it_locks_the_account_after_the_login_pages_limit_and_refuses_even_the_right_password() -> None:
    UserFactory.create(username="ana")
    # Failures on the login page and through the API count towards one limit.
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        Client().post("/login/", {"username": "ana", "password": "wrong"})
    locked = _sign_in("ana", "still-wrong")
    assert locked.status_code == 429
    assert locked["Content-Type"] == "application/json"
    assert "locked" in locked.json()["detail"]
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert AuditEvent.objects.filter(action="auth.locked_out", payload__username="ana").exists()
    right = _sign_in("ana", PASSWORD)
    assert right.status_code == 429
    assert not AuthToken.objects.exists()
    assert not AuditEvent.objects.filter(action="auth.login").exists()
    # The login page is locked as well.
    assert Client().post("/login/", {"username": "ana", "password": PASSWORD}).status_code == 429


def test_it_refuses_a_locked_account_without_checking_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    UserFactory.create(username="ana")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in("ana", "wrong")
    checked: list[str] = []
    original = User.check_password

    def watching(self: User, raw: str) -> bool:
        checked.append(self.username)
        return original(self, raw)

    monkeypatch.setattr(User, "check_password", watching)
    assert _sign_in("ana", PASSWORD).status_code == 429
    assert checked == []


# --- The operator's command ------------------------------------------------------------------------------


def test_it_mints_a_token_from_the_command_printed_once_with_its_expiry_and_audits_it() -> None:
    UserFactory.create(username="ci-bot")
    out = io.StringIO()
    call_command("api_token_issue", "ci-bot", "--name", "nightly", "--days", "30", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    token = AuthToken.objects.get()
    assert raw.startswith(token.token_key)
    assert token.info.name == "nightly"
    assert timedelta(days=29, hours=23) < token.expiry - timezone.now() <= timedelta(days=30)
    assert "valid until" in out.getvalue()
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {raw}").json()["username"] == "ci-bot"
    event = AuditEvent.objects.get(action="api_token.create")
    assert event.actor_id is None
    assert event.payload["via"] == "command"
    assert event.payload["owner"] == "ci-bot"
    assert event.payload["operator"]
    quiet = io.StringIO()
    call_command("api_token_issue", "ci-bot", "--quiet", stdout=quiet)
    assert quiet.getvalue().strip().startswith("enclave_")
    assert " " not in quiet.getvalue().strip()


def test_it_refuses_deactivated_and_unknown_accounts_and_bad_lifetimes_in_the_command() -> None:
    UserFactory.create(username="gone", is_active=False)
    UserFactory.create(username="ci-bot")
    with pytest.raises(CommandError, match="deactivated"):
        call_command("api_token_issue", "gone", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No user"):
        call_command("api_token_issue", "nobody", stdout=io.StringIO())
    with pytest.raises(CommandError, match="365"):
        call_command("api_token_issue", "ci-bot", "--days", "0", stdout=io.StringIO())
    assert not AuthToken.objects.exists()


# --- Projects --------------------------------------------------------------------------------------------


def test_it_lets_staff_create_a_project_with_its_first_admin(personas: Personas, client_for: ClientFor) -> None:
    response = _json(
        client_for(personas.staff), "post", "/api/v1/projects/",
        {"name": "Retail support", "description": "Cards", "admin": "newcomer"},
    )  # fmt: skip
    assert response.status_code == 201
    body = response.json()
    project = Project.objects.get(pk=body["id"])
    assert (body["name"], body["description"], body["member_count"]) == ("Retail support", "Cards", 1)
    assert Membership.objects.get(project=project).user == personas.newcomer
    assert AuditEvent.objects.filter(action="project.create", project=project).exists()
    taken = _json(client_for(personas.staff), "post", "/api/v1/projects/", {"name": "retail SUPPORT"})
    assert taken.status_code == 409, "the name is taken"
    assert taken.json()["field"] == "name"
    nobody = _json(client_for(personas.staff), "post", "/api/v1/projects/", {"name": "X", "admin": "nobody"})
    assert nobody.status_code == 404, "no such user"
    assert nobody.json()["field"] == "admin"
    refused = _json(client_for(personas.project_admin), "post", "/api/v1/projects/", {"name": "Mine"})
    assert refused.status_code == 404
    assert not Project.objects.filter(name="Mine").exists()


def test_it_lets_project_admins_rename_their_project(personas: Personas, client_for: ClientFor) -> None:
    path = f"/api/v1/projects/{personas.project.pk}/"
    response = _json(client_for(personas.project_admin), "patch", path, {"name": " Retail DE "})
    assert response.status_code == 200
    assert response.json()["name"] == "Retail DE"
    assert response.json()["description"] == "A project made by a test."  # left out: kept
    event = AuditEvent.objects.get(action="project.update")
    assert event.payload == {"before": {"name": "Project A"}, "after": {"name": "Retail DE"}}
    clash = _json(client_for(personas.project_admin), "patch", path, {"name": "project b"})
    assert clash.status_code == 409
    assert clash.json()["field"] == "name"
    assert _json(client_for(personas.data_lead), "patch", path, {"name": "Lead's"}).status_code == 404
    assert Project.objects.get(pk=personas.project.pk).name == "Retail DE"


# --- Users and invitations -------------------------------------------------------------------------------


def test_it_lets_staff_invite_a_person_and_the_link_in_the_answer_sets_a_password(
    personas: Personas, client_for: ClientFor
) -> None:
    staff = client_for(personas.staff)
    response = _json(staff, "post", "/api/v1/users/", {"username": "lena", "display_name": "Lena K."})
    assert response.status_code == 201
    body = response.json()
    assert body["has_password"] is False
    assert body["is_staff"] is False
    link = body["invite_link"]
    assert link.startswith("http://testserver/invite/")
    invitee = Client()
    form_page = invitee.get(link)["Location"]
    chosen = "a-long-new-pass-phrase"
    page = invitee.post(form_page, {"new_password1": chosen, "new_password2": chosen})
    assert page.status_code == 302
    assert User.objects.get(username="lena").check_password("a-long-new-pass-phrase")
    taken = _json(staff, "post", "/api/v1/users/", {"username": "LENA"})
    assert taken.status_code == 409
    assert taken.json()["field"] == "username"
    listed = staff.get("/api/v1/users/", {"limit": 100}).json()
    assert "lena" in [row["username"] for row in listed["results"]]
    assert listed["count"] == User.objects.count()


def test_it_lets_staff_deactivate_an_account_which_revokes_its_tokens(
    personas: Personas, client_for: ClientFor
) -> None:
    _, raw = AuthToken.objects.create(user=personas.newcomer)
    staff = client_for(personas.staff)
    response = _json(staff, "patch", f"/api/v1/users/{personas.newcomer.pk}/", {"is_active": False})
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert not AuthToken.objects.filter(user=personas.newcomer).exists()
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 401
    assert AuditEvent.objects.filter(action="user.deactivate").count() == 1
    itself = _json(staff, "patch", f"/api/v1/users/{personas.staff.pk}/", {"is_active": False})
    assert itself.status_code == 409
    assert User.objects.get(pk=personas.staff.pk).is_active


def test_it_lets_project_admins_invite_a_person_straight_into_their_project(
    personas: Personas, client_for: ClientFor
) -> None:
    path = f"/api/v1/projects/{personas.project.pk}/invitations/"
    response = _json(client_for(personas.project_admin), "post", path, {"username": "lena", "role": "reviewer"})
    assert response.status_code == 201
    assert "/invite/" in response.json()["invite_link"]
    membership = Membership.objects.get(user__username="lena")
    assert (membership.project, membership.role) == (personas.project, Role.REVIEWER)
    bad = _json(client_for(personas.project_admin), "post", path, {"username": "otto", "role": "boss"})
    assert bad.status_code == 400
    assert "role" in bad.json()
    assert not User.objects.filter(username="otto").exists()


# --- The front door --------------------------------------------------------------------------------------


def test_it_links_schema_docs_v1_and_health_from_the_api_index_without_a_token() -> None:
    response = Client().get("/api/")
    assert response.status_code == 200
    links = response.json()["links"]
    assert links["schema"] == "http://testserver/api/schema/"
    assert links["docs"] == "http://testserver/api/docs/"
    assert links["v1"] == "http://testserver/api/v1/"
    assert links["health"] == "http://testserver/api/v1/health/"
    for link in links.values():
        assert Client().get(link.removeprefix("http://testserver")).status_code in {200, 302, 405}
    assert Client().get("/api/v1/").json()["links"]["projects"] == "http://testserver/api/v1/projects/"


def test_it_answers_health_and_schema_without_a_token_and_the_schema_holds_no_data(personas: Personas) -> None:
    health = Client().get("/api/v1/health/")
    assert health.status_code == 200
    assert health.json()["database"] == connection.vendor
    # What a browser asks for: YAML it can show (the OpenAPI media type starts a download instead).
    schema = Client().get("/api/schema/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert schema.status_code == 200
    assert schema["Content-Type"].startswith("text/plain")
    assert schema.content.startswith(b"openapi: 3.")
    asked = Client().get("/api/schema/", headers={"accept": "application/vnd.oai.openapi"})
    assert asked["Content-Type"].startswith("application/vnd.oai.openapi")
    text = schema.content.decode()
    assert "/api/v1/auth/token/" in text
    assert "Project A" not in text
    assert "annotator@example.org" not in text
    assert Client().get("/api/v1/projects/").status_code in {401, 403}  # data still needs a token
    paths = Client().get("/api/schema/", {"format": "json"}).json()["paths"]
    project = "/api/v1/projects/{id}"
    documented = [
        ("/api/", "get"), ("/api/v1/auth/token/", "post"), ("/api/v1/projects/", "post"), (f"{project}/", "patch"),
        ("/api/v1/users/", "post"), (f"{project}/invitations/", "post"), (f"{project}/rubric/", "put"),
        (f"{project}/annotation-settings/", "patch"), (f"{project}/comparison-settings/", "patch"),
        (f"{project}/adapters/{{adapter_pk}}/files/", "get"),
    ]  # fmt: skip
    for path, method in documented:
        operation = paths.get(path, {}).get(method)
        assert operation is not None, (method, path)
        bodies = [*operation.get("requestBody", {}).get("content", {}).values(),
                  *(c for r in operation["responses"].values() for c in r.get("content", {}).values())]  # fmt: skip
        assert any("examples" in body for body in bodies), f"{method} {path} has no example"


def test_it_sends_a_signed_out_visitor_of_the_docs_page_to_the_login_page(
    client_for: ClientFor, personas: Personas
) -> None:
    response = Client().get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/api/docs/"
    assert client_for(personas.annotator).get("/api/docs/").status_code == 200


def test_it_needs_a_token_for_the_worker_round_trip_of_health() -> None:
    refused = Client().get("/api/v1/health/", {"worker": "1"})
    assert refused.status_code in {401, 403}
    assert "token" in refused.json()["detail"]


def test_it_resets_the_failure_count_on_a_successful_sign_in_as_a_page_login_does() -> None:
    UserFactory.create(username="ana")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in("ana", "wrong").status_code == 401
    assert _sign_in("ana", PASSWORD).status_code == 201
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in("ana", "wrong").status_code == 401
    assert _sign_in("ana", PASSWORD).status_code == 201


@pytest.mark.parametrize(
    ("query", "named"), [({"active": "0"}, "active"), ({"limit": "ten"}, "limit"), ({"offset": "-1"}, "offset")]
)
def test_it_refuses_parameters_the_user_list_does_not_take(
    personas: Personas, client_for: ClientFor, query: dict[str, str], named: str
) -> None:
    response = client_for(personas.staff).get("/api/v1/users/", query)
    assert response.status_code == 400
    assert list(response.json()) == [named]
    assert client_for(personas.staff).get("/api/v1/users/", {"limit": "2", "offset": "1"}).json()["count"] == 8
