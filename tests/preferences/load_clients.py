"""Annotators as real API clients, for the tests that load real web processes while a part of the stack fails:
a project to judge with a token for each annotator, client threads that submit and-next over keep-alive
connections until told to stop, and what their answers must show."""

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from accounts import services as accounts_services
from accounts.models import Project, Role, User
from annotation import services as annotation_services
from preferences.models import Judgement
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.preferences.helpers import comparison_line, import_comparisons, set_mode

CONNECTION_ERRORS = (ConnectionError, http.client.HTTPException, TimeoutError)


def judged_project(
    name: str, annotators: int, comparisons: int, lead: User, *, preference_settings: dict[str, Any] | None = None
) -> tuple[Project, list[str]]:
    """A project led by ``lead`` with ``comparisons`` imported, two annotators an item, and an API token for
    each of its ``annotators``."""
    project = ProjectFactory.create(name=name)
    MembershipFactory.create(project=project, user=lead, role=Role.DATA_LEAD)
    annotation_services.annotation_settings_update(
        actor=lead, project=project, annotators_per_item=2, lease_minutes=30, pii_mode="replace", pii_patterns=[],
        pii_terms=[],
    )  # fmt: skip
    if preference_settings is not None:
        set_mode(project, lead, **preference_settings)
    lines = [comparison_line(f"{name} question {n}?", f"Answer {n}.0", f"Answer {n}.1") for n in range(comparisons)]
    assert import_comparisons(project, lead, *lines).status == "done"
    tokens = []
    for n in range(annotators):
        user = UserFactory.create(username=f"{name.lower().replace(' ', '-')}-annotator-{n}")
        MembershipFactory.create(project=project, user=user, role=Role.ANNOTATOR)
        tokens.append(accounts_services.api_token_create(user=user, name="fault test", days=1)[1])
    return project, tokens


@dataclass
class Annotator:
    """One client thread: a keep-alive connection to one web server and an API token, submitting and-next
    until told to stop. With ``resend``, a request that gets no answer is sent again as it was, on a new
    connection (what a careful API client does); without, a connection error ends the client, in ``errors``."""

    port: int
    token: str
    project_id: int
    resend: bool = False
    timeout: float = 60
    acked: dict[str, int] = field(default_factory=dict)  # idempotency key → judgement id of the 201
    acked_at: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    resent: list[tuple[str, bool]] = field(default_factory=list)  # key, and whether the lost try had stored it
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    conn: http.client.HTTPConnection | None = None
    thread: threading.Thread | None = None

    def _post(self, path: str, payload: dict[str, Any] | None) -> tuple[int, Any]:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        for _ in range(10):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
            except CONNECTION_ERRORS:
                if not self.resend:
                    raise
                self.conn.close()
                self.conn = None
                key = payload["idempotency_key"] if payload else ""
                self.resent.append((key, bool(key) and Judgement.objects.filter(idempotency_key=key).exists()))
                time.sleep(0.05)
                continue
            self.statuses[response.status] += 1
            return response.status, json.loads(data) if data else None
        raise AssertionError(f"no answer to {path} after 10 tries")

    def run(self) -> None:
        base = f"/api/v1/projects/{self.project_id}/comparisons/"
        try:
            status, shown = self._post(f"{base}next/", None)
            n = 0
            while status in (200, 201) and shown is not None and not self.stop.is_set():
                key = uuid.uuid4().hex
                payload = {"choice": "A" if n % 3 else "B", "time_spent_ms": 9000, "idempotency_key": key}
                status, out = self._post(f"{base}{shown['id']}/judgements/and-next/", payload)
                if status != 201:
                    self.errors.append(f"{status}: {str(out)[:200]}")
                    return
                self.acked[key] = out["judgement"]["id"]
                self.acked_at.append(time.monotonic())
                shown, n = out["next"], n + 1
        except Exception as exc:  # a client that fails says so in the assertions
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if self.conn is not None:
                self.conn.close()
            connections.close_all()


def start(clients: Sequence[Annotator]) -> None:
    for n, client in enumerate(clients):
        client.thread = threading.Thread(target=client.run, name=f"annotator-{n}")
        client.thread.start()


def stop(clients: Sequence[Annotator]) -> None:
    """Tell all to stop, then wait for each to end its last request."""
    for client in clients:
        client.stop.set()
    for client in clients:
        assert client.thread is not None
        client.thread.join(timeout=60)


def checked_answers(clients: Sequence[Annotator]) -> tuple[dict[str, int], Counter[int]]:
    """Asserts that no client failed and that every answer was a 200 or a 201; returns the judgements
    acknowledged (idempotency key → id) and the answers by status."""
    errors = [error for client in clients for error in client.errors]
    assert not errors, errors[:5]
    statuses = sum((client.statuses for client in clients), Counter[int]())
    assert set(statuses) <= {200, 201}, statuses
    return {key: pk for client in clients for key, pk in client.acked.items()}, statuses
