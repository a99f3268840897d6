"""A gunicorn web worker killed with SIGKILL while annotators submit and-next: the other worker keeps serving,
the arbiter starts a new one, and a client that lost its answer and sends the same request again (same
idempotency key) gets one judgement, not two.

Real processes: gunicorn as ``manage.py serve`` runs it (two workers of four threads) on the test database,
six client threads with API tokens, each on a keep-alive connection; a request that fails with a connection
error is sent again, unchanged, on a new connection."""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connections

from accounts import services as accounts_services
from accounts.models import Role
from annotation import services as annotation_services
from preferences.models import Judgement
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.preferences.helpers import comparison_line, import_comparisons, set_mode
from tests.processes import children, free_port
from tests.workers import ROOT, worker_env

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.usefixtures("on_postgres")]

T = TypeVar("T")
ANNOTATORS = 6
BEFORE_S, AFTER_S = 3.0, 3.0  # load before the kill, and after the new worker is up
CONNECTION_ERRORS = (ConnectionError, http.client.HTTPException, TimeoutError)


@dataclass
class Annotator:
    """One client: submits and-next until told to stop; a request that gets no answer is sent again as it
    was, on a new connection (what a careful API client does)."""

    port: int
    token: str
    project_id: int
    acked: dict[str, int] = field(default_factory=dict)  # idempotency key → judgement id of the 201
    ack_times: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    resent: list[tuple[str, bool]] = field(default_factory=list)  # key, and whether the lost try had stored it
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    conn: http.client.HTTPConnection | None = None

    def _post(self, path: str, payload: dict[str, Any] | None) -> tuple[int, Any]:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        for _ in range(10):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
            except CONNECTION_ERRORS:
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
                self.ack_times.append(time.monotonic())
                shown, n = out["next"], n + 1
        except Exception as exc:  # a client that fails says so in the assertions
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if self.conn is not None:
                self.conn.close()
            connections.close_all()


def health(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/v1/health/")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def wait_until(check: Callable[[], T], what: str, timeout: float = 90) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.05)
    pytest.fail(f"{what} not within {timeout} s")


@dataclass
class Web:
    arbiter: subprocess.Popen[bytes]
    port: int
    log: Path

    def served(self) -> Counter[int]:
        """Requests answered so far, by worker pid (from the access log)."""
        lines = self.log.read_text().splitlines()
        return Counter(int(line.split()[1].strip("<>")) for line in lines if line.startswith("served-by "))


@pytest.fixture
def web(transactional_db: None, tmp_path: Path) -> Iterator[Web]:
    port = free_port()
    log = tmp_path / "web.log"
    arbiter = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "enclave.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", "4", "--graceful-timeout", "5",
            "--access-logfile", "-", "--access-logformat", "served-by %(p)s %(m)s %(U)s %(s)s",
        ],
        cwd=ROOT, env=worker_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: health(port) == 200 and len(children(arbiter.pid)) == 2, "gunicorn with two workers")
        yield Web(arbiter, port, log)
    finally:
        arbiter.send_signal(signal.SIGTERM)
        try:
            arbiter.wait(timeout=20)
        except subprocess.TimeoutExpired:
            arbiter.kill()
            arbiter.wait()


def test_it_keeps_serving_and_stores_each_judgement_once_when_a_web_worker_is_killed(web: Web) -> None:
    arbiter, port = web.arbiter, web.port
    lead = UserFactory.create(username="lead")
    project = ProjectFactory.create(name="Killed worker")
    MembershipFactory.create(project=project, user=lead, role=Role.DATA_LEAD)
    annotation_services.annotation_settings_update(
        actor=lead, project=project, annotators_per_item=2, lease_minutes=30, pii_mode="replace", pii_patterns=[],
        pii_terms=[],
    )  # fmt: skip
    set_mode(project, lead, "pairwise", gold_rate=0.0)
    lines = [comparison_line(f"Question {n}?", f"Answer {n}.0", f"Answer {n}.1") for n in range(2000)]
    assert import_comparisons(project, lead, *lines).status == "done"
    clients = []
    for n in range(ANNOTATORS):
        user = UserFactory.create(username=f"annotator-{n}")
        MembershipFactory.create(project=project, user=user, role=Role.ANNOTATOR)
        token = accounts_services.api_token_create(user=user, name="fault test", days=1)[1]
        clients.append(Annotator(port, token, project.pk))
    threads = [threading.Thread(target=client.run, name=f"annotator-{n}") for n, client in enumerate(clients)]
    for thread in threads:
        thread.start()

    time.sleep(BEFORE_S)
    workers = children(arbiter.pid)
    assert len(workers) == 2
    victim = max(workers, key=lambda pid: web.served()[pid])  # the one holding more of the clients' connections
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    replacement = wait_until(lambda: [pid for pid in children(arbiter.pid) if pid not in workers], "a new web worker")
    # Clients keep their connections to the other worker: the test's own requests, each on a new connection,
    # find the new worker once it accepts.
    wait_until(lambda: health(port) and web.served()[replacement[0]] > 0, "an answer from the new web worker")
    first_answer_at = time.monotonic()
    time.sleep(AFTER_S)
    for client in clients:
        client.stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert arbiter.poll() is None, "the arbiter itself stays up"
    assert len(children(arbiter.pid)) == 2
    errors = [error for client in clients for error in client.errors]
    assert not errors, errors[:5]
    statuses = sum((client.statuses for client in clients), Counter[int]())
    assert set(statuses) <= {200, 201}, statuses
    resent = [entry for client in clients for entry in client.resent]
    assert [key for key, _ in resent if key], "no judgement was cut by the kill"

    # Every acknowledged judgement stored once, under the id the client was told; nothing else stored.
    acked = {key: pk for client in clients for key, pk in client.acked.items()}
    stored = dict(Judgement.objects.filter(item__project=project).values_list("idempotency_key", "id"))
    assert stored == acked
    during = sum(killed_at <= t <= first_answer_at for client in clients for t in client.ack_times)
    assert during > 0, "the other worker served while the killed one was replaced"
