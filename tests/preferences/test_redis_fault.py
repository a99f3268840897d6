"""Redis (broker and cache) restarted while 16 annotators submit and-next through real web processes: nothing
lost or doubled, no 5xx, one log line per web process when Redis goes and one when it is back, and the
agreement runs asked for during the outage run after it.

Real processes: a redis-server of the test's own on a free port (the shared one is never touched), two
gunicorn web servers (one process of 8 threads each, as two web nodes behind a balancer: the clients are
spread over both, so each process meets the outage and the return) and a Celery ``default`` worker, all
pointed at it. Project A is judged before, during and after the outage; project B only before and during
it, so nothing but the worker catching up when it reconnects brings B's agreement up to date afterwards.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from accounts.models import Project
from preferences.models import AgreementSnapshot, Judgement
from tests.factories import UserFactory
from tests.preferences.load_clients import Annotator, checked_answers, judged_project, start, stop
from tests.processes import free_port, wait_until
from tests.webservers import health, start_gunicorn, stop_gunicorn
from tests.workers import start_worker, stop_worker

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.usefixtures("on_postgres")]

BEFORE_S, OUTAGE_S, AFTER_S = 3.0, 6.0, 4.0
CATCH_UP_S = 40.0  # the worker reconnects within kombu's backoff (2, 4, 6 … s), then one run per project
UNREACHABLE = re.compile(r"Task broker and cache unreachable from process (\d+)")
BACK = re.compile(r"Task broker and cache reachable again from process (\d+) after [\d.]+ s; ([\d,]+) calls refused")


class RedisServer:
    """A redis-server of this test's own, without persistence: a restart comes back empty, as after a crash
    of a cache-only Redis."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        ping = redis.Redis(port=self.port, socket_connect_timeout=1).ping
        wait_until(ping, "redis-server", 15, ignoring=(OSError, redis.RedisError))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


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
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"web-{n}.log" for n in range(2)]
    webs = [
        start_gunicorn(port, log, workers=1, threads=8, options=("--no-control-socket",), REDIS_URL=own_redis.url)
        for port, log in zip(ports, logs, strict=True)
    ]
    worker_log = tmp_path / "worker.log"
    worker = start_worker("default", "pytest-redis-fault", output=worker_log.open("w"), REDIS_URL=own_redis.url)
    try:
        wait_until(lambda: all(health(port) == 200 for port in ports), f"gunicorn on {ports}", 90)
        wait_until(lambda: " ready." in worker_log.read_text(), "the default worker", 90)
        yield Stack(own_redis, ports, logs, worker_log)
    finally:
        stop_worker(worker, timeout=20)
        stop_gunicorn(*webs)


def _caught_up(project: Project) -> bool:
    stored = Judgement.objects.filter(item__project=project, is_gold=False).count()
    latest = AgreementSnapshot.objects.filter(project=project).order_by("-computed_at", "-id").first()
    return latest is not None and latest.judgements == stored


def test_it_loses_nothing_logs_the_outage_once_and_runs_the_owed_agreement_after_a_redis_restart(
    stack: Stack,
) -> None:
    lead = UserFactory.create(username="lead")
    project_a, tokens_a = judged_project("Project A", 12, 1500, lead)
    project_b, tokens_b = judged_project("Project B", 4, 600, lead)
    clients_a = [Annotator(stack.web_ports[n % 2], token, project_a.pk) for n, token in enumerate(tokens_a)]
    clients_b = [Annotator(stack.web_ports[n % 2], token, project_b.pk) for n, token in enumerate(tokens_b)]
    clients = clients_a + clients_b
    start(clients)

    time.sleep(BEFORE_S)
    stack.redis.kill()
    down_at = time.monotonic()
    time.sleep(OUTAGE_S)
    stop(clients_b)  # B is judged up to the end of the outage and not after
    stack.redis.start()
    back_at = time.monotonic()
    time.sleep(AFTER_S)
    stop(clients_a)
    acked_at = sorted(t for c in clients for t in c.acked_at)

    # Every acknowledged judgement stored once, under the id the client was told; nothing else stored.
    acked, statuses = checked_answers(clients)
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
        wait_until(lambda: " ready." in log.read_text(), "the default worker", 90)
        probe.send_task("enclave.health_check", queue="default", countdown=300, ignore_result=True)
        wait_until(lambda: "enclave.health_check" in log.read_text(), "the held task", 30)
        own_redis.kill()
        time.sleep(2)
        own_redis.start()
        answer = probe.send_task("enclave.health_check", queue="default").get(timeout=60)
        assert answer["status"] == "ok"
        assert worker.poll() is None, log.read_text()[-3000:]
    finally:
        probe.close()
        stop_worker(worker, timeout=20)
