"""Real gunicorn web servers for the tests that put load on them: started on the test database as
``manage.py serve`` runs them, asked for their health, and stopped."""

import http.client
import signal
import subprocess
import sys
from pathlib import Path

from tests.workers import ROOT, worker_env


def start_gunicorn(
    port: int, log: Path, *, workers: int, threads: int, options: tuple[str, ...] = (), **env: str
) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "enclave.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--threads", str(threads), "--graceful-timeout", "5", *options,
        ],
        cwd=ROOT, env=worker_env(**env), stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_gunicorn(*arbiters: "subprocess.Popen[bytes]") -> None:
    """SIGTERM to all at once, then a wait for each (killed if it is not gone within 20 s)."""
    for arbiter in arbiters:
        arbiter.send_signal(signal.SIGTERM)
    for arbiter in arbiters:
        try:
            arbiter.wait(timeout=20)
        except subprocess.TimeoutExpired:
            arbiter.kill()
            arbiter.wait()


def health(port: int) -> int:
    """The status of the health check, or 0 when the server does not answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/v1/health/")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()
