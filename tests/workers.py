"""Real Celery worker processes for the tests: they consume the configured broker (Redis in CI, the embedded
filesystem broker otherwise) and open the test database."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    """The URL of the database the tests run on, for a worker subprocess to open."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = quote(db["USER"] or "")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"])
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def worker_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "enclave.settings.test",
        "DATABASE_URL": test_database_url(),
        "ENCLAVE_DATA_DIR": str(settings.DATA_DIR),
        **extra,
    }


def start_worker(queue: str, name: str, *, pool: str = "solo", output: Any = subprocess.PIPE, **env: str) -> Any:
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "enclave", "worker", "-Q", queue, "-n", f"{name}@%h",
            "--pool", pool, "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ],
        cwd=ROOT, env=worker_env(**env), stdout=output, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def stop_worker(proc: "subprocess.Popen[str]", timeout: float = 30) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
