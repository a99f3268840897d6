"""Passwords, tokens and the server's secret never reach a log line, an audit event, a stored login attempt
or a response body (a token appears once: in the answer that issues it)."""

import io
import json
import logging
import re
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from knox.models import AuthToken

from accounts import selectors, services
from accounts.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

WRONG_PASSWORD = "Wrong-but-close-Horse-7781"
INVITED_PASSWORD = "Invited-Lantern-Quartz-4412"
CREATED_PASSWORD = "Created-Orchard-Violet-5093"
BAD_TOKEN = "enclave_" + "d" * 64


class Recorder:
    """Every response body of the run, by what was asked."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str]] = []

    def __call__(self, label: str, response: Any) -> Any:
        content = b"".join(response.streaming_content) if response.streaming else response.content
        self.bodies.append((label, content.decode()))
        return response

    def body(self, label: str) -> str:
        return next(body for name, body in self.bodies if name == label)


def _post_json(client: Client, path: str, body: dict[str, object], token: str = "") -> Any:
    headers = {"Authorization": f"Token {token}"} if token else {}
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def _run_every_flow(record: Recorder) -> tuple[list[str], str]:
    """Sign in (wrong, then right) on the page and the API, accept an invite, make tokens on the page, the API
    and the command line, use them, present a bad one, and create a user with a password. Returns the raw
    tokens issued and the invite link's token."""
    ana = UserFactory.create(username="ana")
    admin = UserFactory.create(username="boss", is_staff=True)
    raws: list[str] = []

    browser = Client()
    record("page login, wrong", browser.post("/login/", {"username": "ana", "password": WRONG_PASSWORD}))
    record("page login", browser.post("/login/", {"username": "ana", "password": PASSWORD}, follow=True))
    page = record("page token", browser.post("/account/tokens/", {"name": "nightly", "days": 30}))
    found = re.search(r'value="(enclave_[0-9a-f]+)"', page.content.decode())
    assert found, "the tokens page shows the new token once"
    raws.append(found.group(1))
    record("tokens page again", browser.get("/account/tokens/"))

    api = Client()
    wrong = record(
        "api sign-in, wrong", _post_json(api, "/api/v1/auth/token/", {"username": "ana", "password": WRONG_PASSWORD})
    )
    assert wrong.status_code == 401
    signed = record("api sign-in", _post_json(api, "/api/v1/auth/token/", {"username": "ana", "password": PASSWORD}))
    assert signed.status_code == 201
    raws.append(signed.json()["token"])
    made = record(
        "api token",
        _post_json(api, "/api/v1/tokens/", {"name": "ci", "days": 7}, token=raws[1]),
    )
    assert made.status_code == 201
    raws.append(made.json()["token"])
    for n, raw in enumerate(raws):
        me = record(f"api me {n}", api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {raw}"))
        assert me.status_code == 200
    record("api token list", api.get("/api/v1/tokens/", HTTP_AUTHORIZATION=f"Token {raws[0]}"))
    refused = record("api bad token", api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {BAD_TOKEN}"))
    assert refused.status_code == 401

    out = io.StringIO()
    call_command("api_token_issue", "ana", "--quiet", stdout=out)
    raws.append(out.getvalue().strip())
    assert record("api me command", api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {raws[-1]}")).status_code == 200

    invited = services.user_invite(actor=admin, username="newcomer")
    link = selectors.invite_path(invited)
    invite_token = link.rstrip("/").rsplit("/", 1)[1]
    newcomer = Client()
    opened = record("invite link", newcomer.get(link))
    assert invite_token not in opened["Location"]
    record("invite page", newcomer.get(opened["Location"]))
    accepted = newcomer.post(opened["Location"], {"new_password1": INVITED_PASSWORD, "new_password2": INVITED_PASSWORD})
    record("invite accept", accepted)
    invited.refresh_from_db()
    assert invited.check_password(INVITED_PASSWORD)
    reused = record("invite reused", newcomer.get(link, follow=True))
    assert reused.status_code == 200, "a spent link answers the not-valid page, never a 404"
    record("invite reused elsewhere", Client().get(link, follow=True))
    record("invite link, wrong token", Client().get(link.replace(invite_token, "c8v1x4-0f3e9a"), follow=True))
    uid = urlsafe_base64_encode(force_bytes(invited.pk))
    assert link == reverse("invite_accept", kwargs={"uidb64": uid, "token": invite_token})

    created = services.user_create(actor=admin, username="made", password=CREATED_PASSWORD)
    assert created.check_password(CREATED_PASSWORD)
    wrong_made = record(
        "page login as made, wrong", Client().post("/login/", {"username": "made", "password": WRONG_PASSWORD})
    )
    assert wrong_made.status_code == 200
    staff = Client()
    staff.force_login(admin)
    record("site audit page", staff.get("/audit/"))
    record("users page", staff.get("/users/"))
    assert ana.check_password(PASSWORD)
    return raws, invite_token


def _stored_text() -> str:
    """Audit events (payloads and labels) and django-axes' records of login attempts, serialised."""
    rows: list[Any] = list(AuditEvent.objects.values())
    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        rows += list(model.objects.values())
    return json.dumps(rows, default=str)


def test_it_keeps_passwords_tokens_and_the_secret_key_out_of_logs_audit_and_responses(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    for name in ("django", "django.request", "django.security", "axes", "enclave", "accounts", "knox"):
        caplog.set_level(logging.DEBUG, logger=name)
    record = Recorder()
    raws, invite_token = _run_every_flow(record)
    digests = list(AuthToken.objects.values_list("digest", flat=True))
    assert len(digests) == len(raws) == 4
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 3

    logs = caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    assert caplog.records, "the run was logged"
    stored = _stored_text()
    never = [PASSWORD, WRONG_PASSWORD, INVITED_PASSWORD, CREATED_PASSWORD, BAD_TOKEN, settings.SECRET_KEY, *digests]
    # Opened, used, and opened again once spent: the invite link's token is in no log line (a refusal would
    # have been logged by django.request with its path).
    assert invite_token not in logs
    for secret in [*never, *raws]:
        assert secret not in logs, f"a log line holds {secret[:12]}…"
        assert secret not in stored, f"the audit or axes records hold {secret[:12]}…"
    assert invite_token not in stored
    for label, body in record.bodies:
        for secret in never:
            assert secret not in body, f"the response to {label} holds {secret[:12]}…"
    for raw in raws[:3]:
        showing = [label for label, body in record.bodies if raw in body]
        assert showing in (["page token"], ["api sign-in"], ["api token"]), showing
    assert invite_token not in record.body("invite accept")
