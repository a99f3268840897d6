"""``manage.py serve`` run for real (SQLite and the filesystem broker in a temporary data directory): a child
killed with SIGKILL is started again after a pause while the web keeps answering, and a child that keeps
crashing stops everything with a message that names it, leaving no process behind. Its console ends with one
block (address, logins, log file, how to stop) and holds no start-up noise; the web serves the static files
hashed, compressed and cacheable for a year."""

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
from email.message import Message
from pathlib import Path
from typing import TypeVar

import pytest

from enclave.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS
from enclave.management.commands.serve import FIRST_DELAY, LOG_NAME, PERSONAS, Command
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


def worker_lines(logged: str) -> bool:
    """Whether both workers have logged at INFO: each its connection, the default one its readiness."""
    connected = re.findall(r"INFO celery.worker.consumer.connection: Connected to filesystem://", logged)
    return len(connected) == 2 and re.search(r"INFO celery.apps.worker: default@\S+ ready\.", logged) is not None


def fetch(port: int, path: str, encoding: str = "identity") -> tuple[Message, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept-Encoding": encoding})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http, built above
        return response.headers, response.read()


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


# Three crashes make a loop here (five by default): the same path, two restarts (and 12 s of back-off) fewer.
CRASH_LIMIT = 3


def start_serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if name not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="enclave.settings.local", ENCLAVE_DATA_DIR=str(data_dir),
        SERVE_CRASH_LIMIT=str(CRASH_LIMIT),
    )  # fmt: skip
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
        f"stopping everything. Look at its lines in {data_dir / 'logs' / LOG_NAME} (can it reach the broker and "
        "the database?"
    ) in text
    assert not still_running(seen), "processes left behind"
    assert len(seen) >= 6  # gunicorn and its two workers, two celery workers and more: all were watched


@pytest.mark.worker
def test_it_stops_every_child_on_ctrl_c_and_keeps_the_console_short(data_dir: Path, tmp_path: Path) -> None:
    """Ctrl+C (SIGINT) and SIGTERM share one handler: ask every child to stop, then wait for them. Meanwhile the
    console shows the closing block and nothing of the children's start-up, which is in the log file (with the
    access log, which keeps invite tokens out), and the static files are answered compressed and cacheable."""
    port = free_port()
    log = tmp_path / "serve.log"
    serve = start_serve(data_dir, port, log)
    log_file = data_dir / "logs" / LOG_NAME
    try:
        wait_for("answer from the web", lambda: True if health(port) == 200 else None, serve)
        wait_for("gpu worker", lambda: gpu_worker(serve.pid), serve)
        assert health(port, "/invite/MQ/c8v1x4-0f3e9a5b/") == 200, "the not-valid page, after a redirect"

        _, page = fetch(port, "/login/")
        names = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.decode())
        css = next(name for name in names if name.startswith("/static/css/enclave."))
        assert re.fullmatch(r"/static/css/enclave\.[0-9a-f]{12}\.css", css), names
        assert all(re.search(r"\.[0-9a-f]{12}\.\w+$", name) for name in names), names
        plain_headers, plain = fetch(port, css)
        for encoding in ("gzip", "br"):
            headers, body = fetch(port, css, encoding)
            assert headers["Content-Encoding"] == encoding
            assert len(body) < len(plain) / 2
            assert headers["Cache-Control"] == "max-age=315360000, public, immutable"
        assert plain_headers["Content-Encoding"] is None
        assert plain_headers["Cache-Control"] == "max-age=315360000, public, immutable"

        wait_for("both workers' lines", lambda: True if worker_lines(log_file.read_text()) else None, serve)
        seen = descendants(serve.pid)
        assert len(children(serve.pid)) == 4  # web, two workers, beat
        assert any(b"beat" in command_line(pid) for pid in children(serve.pid))
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=60) == 0
    finally:
        end(serve)
    assert not still_running(seen), "processes left behind"
    console = log.read_text()
    as_root = os.geteuid() == 0
    root = "Root:  the workers run as root too, which Celery advises against outside a container\n"
    block = (
        f"Enclave is running at http://127.0.0.1:{port}/\n\n"
        f"Data:  SQLite and a filesystem broker, in {data_dir}\n"
        f"Logs:  {log_file} (warnings and errors also show here)\n"
        f"{root if as_root else ''}"
        "Stop:  Ctrl+C\n"
    )
    assert block in console
    assert "SecurityWarning" not in console
    for noise in (" INFO ", "[INFO]", "[tasks]", "celery.worker", "shards", "No hostname was supplied", "GET /"):
        assert noise not in console, f"{noise!r} on the console:\n{console}"
    assert "restarting" not in console
    logged = log_file.read_text()
    assert worker_lines(logged)
    assert f"[INFO] Listening at: http://127.0.0.1:{port}" in logged
    assert f'"GET {css} HTTP/1.1" 200' in logged
    assert '"GET /invite/MQ/…/ HTTP/1.1" 302' in logged, "the access log keeps the request, not the token"
    assert "c8v1x4" not in logged


def test_it_names_each_demo_login_with_what_it_is_for(tmp_path: Path) -> None:
    welcome = Command().welcome("127.0.0.1", 8000, tmp_path / LOG_NAME, demo=True)

    assert f"Log in with the password {DEMO_PASSWORD} as:\n" in welcome
    assert "  annotator     domain expert: labels chats, ranks model answers\n" in welcome
    assert "  reviewer      reviewer: accepts or sends back annotations\n" in welcome
    assert "  datalead      data lead: rubric, imports, releases\n" in welcome
    assert "  staff         site admin: every project, /admin/\n" in welcome
    assert all(f"  {username:<13} {PERSONAS[username]}" in welcome for username, _, _ in DEMO_USERS)
    assert welcome.endswith(f"Logs:  {tmp_path / LOG_NAME} (warnings and errors also show here)\nStop:  Ctrl+C")
