"""``manage.py serve`` run for real (SQLite and the filesystem broker in a temporary data directory): a child
killed with SIGKILL is started again after a pause while the web keeps answering, and a child that keeps
crashing stops everything with a message that names it, leaving no process behind."""

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from enclave.management.commands.serve import CRASH_LIMIT, FIRST_DELAY
from tests.processes import Process, children, command_line, descendants, free_port, still_running
from tests.workers import ROOT

T = TypeVar("T")


def gpu_worker(serve: int) -> int | None:
    for pid in children(serve):
        args = command_line(pid)
        if b"celery" in args and b"gpu" in args:
            return pid
    return None


def new_gpu_worker(serve: int, previous: int) -> int | None:
    pid = gpu_worker(serve)
    return pid if pid != previous else None


def wait_for(what: str, check: Callable[[], T | None], serve: subprocess.Popen[bytes], timeout: float = 90) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer is not None:
            return answer
        if serve.poll() is not None:
            pytest.fail(f"serve exited with {serve.returncode} while waiting for {what}")
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout} s")


def health(port: int, path: str = "/api/v1/health/") -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class HealthPoller(threading.Thread):
    """Asks the web for its health every 50 ms until stopped, keeping every status (0: no answer)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.statuses: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.statuses.append(health(self.port))
            time.sleep(0.05)

    def stop(self) -> list[int]:
        self.done.set()
        self.join(timeout=15)
        return self.statuses


def restart_lines(log: Path) -> list[str]:
    return re.findall(r"^worker-gpu was killed by SIGKILL; restarting it in .*$", log.read_text(), re.MULTILINE)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the module: the second run of serve finds its database migrated."""
    return tmp_path_factory.mktemp("serve-data")


def start_serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if name not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="enclave.settings.local", ENCLAVE_DATA_DIR=str(data_dir))
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-seed", "--port", str(port)],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip


def end(serve: subprocess.Popen[bytes]) -> None:
    """After a failed assertion: nothing of this run outlives the test."""
    if serve.poll() is None:
        for pid, _ in descendants(serve.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        serve.kill()
        serve.wait()


@pytest.mark.worker
def test_it_restarts_a_crashed_child_and_stops_on_a_crash_loop(data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    serve = start_serve(data_dir, port, log)
    seen: set[Process] = set()
    try:
        wait_for("answer from the web", lambda: True if health(port) == 200 else None, serve)
        first = wait_for("gpu worker", lambda: gpu_worker(serve.pid), serve)
        seen |= descendants(serve.pid)

        poller = HealthPoller(port)
        poller.start()
        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)
        second = wait_for("new gpu worker", lambda: new_gpu_worker(serve.pid, first), serve)
        restarted_after = time.monotonic() - killed_at
        seen |= descendants(serve.pid)
        time.sleep(1)  # the web answers on after the restart as well
        assert restart_lines(log) == [f"worker-gpu was killed by SIGKILL; restarting it in {FIRST_DELAY:g} s."]
        assert restarted_after >= FIRST_DELAY

        # A crash loop: each new gpu worker is killed as soon as it appears, until serve gives up.
        current = second
        for _ in range(CRASH_LIMIT - 2):
            os.kill(current, signal.SIGKILL)
            current = wait_for("new gpu worker", functools.partial(new_gpu_worker, serve.pid, current), serve, 60)
            seen |= descendants(serve.pid)
        statuses = poller.stop()
        assert len(statuses) > 10
        assert set(statuses) == {200}, f"the web did not answer every time: {statuses}"
        seen |= descendants(serve.pid)
        os.kill(current, signal.SIGKILL)
        assert serve.wait(timeout=60) == 1
    finally:
        end(serve)
    text = log.read_text()
    assert len(restart_lines(log)) == CRASH_LIMIT - 1
    assert (
        f"worker-gpu was killed by SIGKILL: it crashed {CRASH_LIMIT} times within 120 s, a crash loop; "
        "stopping everything. Look at its lines above (can it reach the broker and the database?"
    ) in text
    assert not still_running(seen), "processes left behind"
    assert len(seen) >= 6  # gunicorn and its two workers, two celery workers and more: all were watched


@pytest.mark.worker
def test_it_stops_every_child_on_ctrl_c_and_keeps_invite_tokens_out_of_the_access_log(
    data_dir: Path, tmp_path: Path
) -> None:
    """Ctrl+C (SIGINT) and SIGTERM share one handler: ask every child to stop, then wait for them."""
    port = free_port()
    log = tmp_path / "serve.log"
    serve = start_serve(data_dir, port, log)
    try:
        wait_for("answer from the web", lambda: True if health(port) == 200 else None, serve)
        wait_for("gpu worker", lambda: gpu_worker(serve.pid), serve)
        assert health(port, "/invite/MQ/c8v1x4-0f3e9a5b/") == 200, "the not-valid page, after a redirect"
        seen = descendants(serve.pid)
        assert len(children(serve.pid)) == 3
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=60) == 0
    finally:
        end(serve)
    assert not still_running(seen), "processes left behind"
    text = log.read_text()
    assert "restarting" not in text
    assert '"GET /invite/MQ/…/ HTTP/1.1" 302' in text, "the access log keeps the request, not the token"
    assert "c8v1x4" not in text
