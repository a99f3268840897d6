"""Redis (broker and cache) restarted while 16 annotators submit and-next through real web processes: nothing
lost or doubled, no 5xx, one log line per web process when Redis goes and one when it is back, and the
agreement runs asked for during the outage run after it.

Real processes: a redis-server of the test's own on a free port (the shared one is never touched), two
gunicorn web servers (one process of 8 threads each, as two web nodes behind a balancer: the clients are
spread over both, so each process meets the outage and the return) and a Celery ``default`` worker, all
pointed at it. Project A is judged before, during and after the outage; project B only before and during
it, so nothing but the worker catching up when it reconnects brings B's agreement up to date afterwards.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from accounts import services as accounts_services
from accounts.models import Project, Role, User
from annotation import services as annotation_services
from preferences.models import AgreementSnapshot, Judgement
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.preferences.helpers import comparison_line, import_comparisons
from tests.workers import ROOT, start_worker, stop_worker, worker_env

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.usefixtures("on_postgres")]

BEFORE_S, OUTAGE_S, AFTER_S = 3.0, 6.0, 4.0
CATCH_UP_S = 40.0  # the worker reconnects within kombu's backoff (2, 4, 6 … s), then one run per project
UNREACHABLE = re.compile(r"Task broker and cache unreachable from process (\d+)")
BACK = re.compile(r"Task broker and cache reachable again from process (\d+) after [\d.]+ s; ([\d,]+) calls refused")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.RedisError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    pytest.fail(f"{what} not ready within {timeout} s")


class RedisServer:
    """A redis-server of this test's own, without persistence: a restart comes back empty, as after a crash
    of a cache-only Redis."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait_for(lambda: redis.Redis(port=self.port, socket_connect_timeout=1).ping(), "redis-server", 15)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def _gunicorn(port: int, redis_url: str, log: Path) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "enclave.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--threads", "8", "--graceful-timeout", "5", "--no-control-socket",
        ],
        cwd=ROOT, env=worker_env(REDIS_URL=redis_url), stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@dataclass
class Annotator:
    """One client thread: a keep-alive connection to one web server and an API token, submitting and-next
    until told to stop."""

    port: int
    token: str
    project_id: int
    acked: dict[str, int] = field(default_factory=dict)  # idempotency key → judgement id of the 201
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _post(self, conn: http.client.HTTPConnection, path: str, payload: dict[str, Any] | None) -> tuple[int, Any]:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        self.statuses[response.status] += 1
        return response.status, json.loads(data) if data else None

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        base = f"/api/v1/projects/{self.project_id}/comparisons/"
        try:
            status, shown = self._post(conn, f"{base}next/", None)
            n = 0
            while status in (200, 201) and shown is not None and not self.stop.is_set():
                key = uuid.uuid4().hex
                payload = {"choice": "A" if n % 3 else "B", "time_spent_ms": 9000, "idempotency_key": key}
                status, out = self._post(conn, f"{base}{shown['id']}/judgements/and-next/", payload)
                if status != 201:
                    self.errors.append(f"{status}: {str(out)[:200]}")
                    return
                self.acked[key] = out["judgement"]["id"]
                self.acked_at.append(time.monotonic())
                shown, n = out["next"], n + 1
        except Exception as exc:  # a client that fails says so in the assertions
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


def _project(name: str, annotators: int, comparisons: int, lead: User) -> tuple[Project, list[str]]:
    project = ProjectFactory.create(name=name)
    MembershipFactory.create(project=project, user=lead, role=Role.DATA_LEAD)
    annotation_services.annotation_settings_update(
        actor=lead, project=project, annotators_per_item=2, lease_minutes=30, pii_mode="replace", pii_patterns=[],
        pii_terms=[],
    )  # fmt: skip
    lines = [comparison_line(f"{name} question {n}?", f"Answer {n}.0", f"Answer {n}.1") for n in range(comparisons)]
    assert import_comparisons(project, lead, *lines).status == "done"
    tokens = []
    for n in range(annotators):
        user = UserFactory.create(username=f"{name.lower().replace(' ', '-')}-annotator-{n}")
        MembershipFactory.create(project=project, user=user, role=Role.ANNOTATOR)
        tokens.append(accounts_services.api_token_create(user=user, name="fault test", days=1)[1])
    return project, tokens


@dataclass
class Stack:
    redis: RedisServer
    web_ports: list[int]
    web_logs: list[Path]
    worker_log: Path


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None and os.environ.get("CI") != "true":
        pytest.skip("needs redis-server on the PATH; CI always has it")
    own = RedisServer(tmp_path / "redis.log")
    own.start()
    yield own
    if own.proc is not None and own.proc.poll() is None:
        own.kill()


@pytest.fixture
def stack(transactional_db: None, own_redis: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    ports = [_free_port(), _free_port()]
    logs = [tmp_path / f"web-{n}.log" for n in range(2)]
    webs = [_gunicorn(port, own_redis.url, log) for port, log in zip(ports, logs, strict=True)]
    worker_log = tmp_path / "worker.log"
    worker = start_worker("default", "pytest-redis-fault", output=worker_log.open("w"), REDIS_URL=own_redis.url)
    try:
        for port in ports:
            _wait_for(lambda p=port: _health(p) == 200, f"gunicorn on {port}", 90)
        _wait_for(lambda: " ready." in worker_log.read_text(), "the default worker", 90)
        yield Stack(own_redis, ports, logs, worker_log)
    finally:
        stop_worker(worker, timeout=20)
        for web in webs:
            web.send_signal(signal.SIGTERM)
        for web in webs:
            try:
                web.wait(timeout=20)
            except subprocess.TimeoutExpired:
                web.kill()


def _health(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/v1/health/")
        return conn.getresponse().status
    finally:
        conn.close()


def _caught_up(project: Project) -> bool:
    stored = Judgement.objects.filter(item__project=project, is_gold=False).count()
    latest = AgreementSnapshot.objects.filter(project=project).order_by("-computed_at", "-id").first()
    return latest is not None and latest.judgements == stored


def test_it_loses_nothing_logs_the_outage_once_and_runs_the_owed_agreement_after_a_redis_restart(
    stack: Stack,
) -> None:
    lead = UserFactory.create(username="lead")
    project_a, tokens_a = _project("Project A", 12, 1500, lead)
    project_b, tokens_b = _project("Project B", 4, 600, lead)
    clients_a = [Annotator(stack.web_ports[n % 2], token, project_a.pk) for n, token in enumerate(tokens_a)]
    clients_b = [Annotator(stack.web_ports[n % 2], token, project_b.pk) for n, token in enumerate(tokens_b)]
    clients = clients_a + clients_b
    threads = {id(c): threading.Thread(target=c.run, name=f"annotator-{n}") for n, c in enumerate(clients)}
    for thread in threads.values():
        thread.start()

    time.sleep(BEFORE_S)
    stack.redis.kill()
    down_at = time.monotonic()
    time.sleep(OUTAGE_S)
    for client in clients_b:  # B is judged up to the end of the outage and not after
        client.stop.set()
    for client in clients_b:
        threads[id(client)].join(timeout=60)
    stack.redis.start()
    back_at = time.monotonic()
    time.sleep(AFTER_S)
    for client in clients_a:
        client.stop.set()
    for client in clients_a:
        threads[id(client)].join(timeout=60)
    acked_at = sorted(t for c in clients for t in c.acked_at)

    # Every acknowledged judgement stored once, under the id the client was told; nothing else stored.
    assert not [e for c in clients for e in c.errors], [e for c in clients for e in c.errors][:5]
    statuses = sum((c.statuses for c in clients), Counter[int]())
    assert set(statuses) <= {200, 201}, statuses
    acked = {key: pk for c in clients for key, pk in c.acked.items()}
    stored = dict(
        Judgement.objects.filter(item__project__in=[project_a, project_b]).values_list("idempotency_key", "id")
    )
    assert stored == acked
    during = sum(1 for t in acked_at if down_at < t < back_at)
    assert any(down_at < t for c in clients_b for t in c.acked_at), "project B was judged during the outage"

    # The agreement asked for during the outage is computed after it: both projects' figures count every
    # judgement, B's only through the run the worker sends when it is connected again.
    deadline = back_at + CATCH_UP_S
    while not (_caught_up(project_a) and _caught_up(project_b)) and time.monotonic() < deadline:
        time.sleep(0.25)
    caught_up_at = time.monotonic()
    assert _caught_up(project_a), "project A's agreement stayed behind"
    assert _caught_up(project_b), "project B's agreement (asked for only during the outage) stayed behind"

    # One line per web process when Redis went, one when it came back; no traceback.
    refused = 0
    for log in stack.web_logs:
        text = log.read_text()
        assert "Traceback" not in text, text[:3000]
        gone = UNREACHABLE.findall(text)
        back = BACK.findall(text)
        assert len(gone) == 1, (log.name, gone)
        assert len(back) == 1, (log.name, back)
        assert gone[0] == back[0][0]
        refused += int(back[0][1].replace(",", ""))

    print(  # noqa: T201 - the figures the README quotes (run with -s)
        f"\nRedis restart under load: {len(acked):,} judgements acknowledged ({during:,} during the outage), "
        f"{len(stored):,} stored, {statuses[201]:,} answers 201, no other; outage {back_at - down_at:.1f} s; "
        f"{refused:,} broker/cache "
        f"calls refused in the web processes; agreement of both projects caught up "
        f"{caught_up_at - back_at:.1f} s after Redis was back ({caught_up_at - acked_at[-1]:.1f} s after the last "
        f"judgement)"
    )


def test_it_keeps_the_worker_consuming_through_a_redis_restart_while_it_holds_a_task(
    transactional_db: None, own_redis: RedisServer, tmp_path: Path
) -> None:
    """kombu 5.7 fails to put back the unacknowledged tasks of a connection Redis dropped, and Celery exits on
    it: a worker holding any task (running, or waiting for its countdown, as every debounced agreement run
    does) would not outlive a Redis restart. ``enclave.celery.BrokerLossConsumer`` reconnects instead."""
    log = tmp_path / "worker.log"
    worker = start_worker("default", "pytest-redis-held", output=log.open("w"), REDIS_URL=own_redis.url)
    # Not the current app: shared tasks of later tests must keep publishing to the suite's broker.
    probe = Celery("probe", broker=own_redis.url, backend=own_redis.url, set_as_current=False)
    try:
        _wait_for(lambda: " ready." in log.read_text(), "the default worker", 90)
        probe.send_task("enclave.health_check", queue="default", countdown=300, ignore_result=True)
        _wait_for(lambda: "enclave.health_check" in log.read_text(), "the held task", 30)
        own_redis.kill()
        time.sleep(2)
        own_redis.start()
        answer = probe.send_task("enclave.health_check", queue="default").get(timeout=60)
        assert answer["status"] == "ok"
        assert worker.poll() is None, log.read_text()[-3000:]
    finally:
        probe.close()
        stop_worker(worker, timeout=20)
