"""A gunicorn web worker killed with SIGKILL while annotators submit and-next: the other worker keeps serving,
the arbiter starts a new one, and a client that lost its answer and sends the same request again (same
idempotency key) gets one judgement, not two.

Real processes: gunicorn as ``manage.py serve`` runs it (two workers of four threads) on the test database,
six client threads with API tokens, each on a keep-alive connection; a request that fails with a connection
error is sent again, unchanged, on a new connection."""

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from preferences.models import Judgement
from tests.factories import UserFactory
from tests.preferences.load_clients import Annotator, checked_answers, judged_project, start, stop
from tests.processes import children, free_port, wait_until
from tests.webservers import health, start_gunicorn, stop_gunicorn

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.usefixtures("on_postgres")]

ANNOTATORS = 6
BEFORE_S, AFTER_S = 3.0, 3.0  # load before the kill, and after the new worker is up


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
    access_log = ("--access-logfile", "-", "--access-logformat", "served-by %(p)s %(m)s %(U)s %(s)s")
    arbiter = start_gunicorn(port, log, workers=2, threads=4, options=access_log)
    try:
        wait_until(lambda: health(port) == 200 and len(children(arbiter.pid)) == 2, "gunicorn with two workers")
        yield Web(arbiter, port, log)
    finally:
        stop_gunicorn(arbiter)


def test_it_keeps_serving_and_stores_each_judgement_once_when_a_web_worker_is_killed(web: Web) -> None:
    arbiter, port = web.arbiter, web.port
    lead = UserFactory.create(username="lead")
    project, tokens = judged_project(
        "Killed worker", ANNOTATORS, 2000, lead, preference_settings={"mode": "pairwise", "gold_rate": 0.0}
    )
    clients = [Annotator(port, token, project.pk, resend=True, timeout=30) for token in tokens]
    start(clients)

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
    stop(clients)

    assert arbiter.poll() is None, "the arbiter itself stays up"
    assert len(children(arbiter.pid)) == 2
    acked, _ = checked_answers(clients)
    resent = [entry for client in clients for entry in client.resent]
    assert [key for key, _ in resent if key], "no judgement was cut by the kill"

    # Every acknowledged judgement stored once, under the id the client was told; nothing else stored.
    stored = dict(Judgement.objects.filter(item__project=project).values_list("idempotency_key", "id"))
    assert stored == acked
    during = sum(killed_at <= t <= first_answer_at for client in clients for t in client.acked_at)
    assert during > 0, "the other worker served while the killed one was replaced"
