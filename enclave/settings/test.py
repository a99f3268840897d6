"""Test settings: the same stack as the mode under test, plus fast hashing and an isolated data dir.

Under ``CI=true`` the suite must run on PostgreSQL and Redis; ``tests/conftest.py`` refuses to start
otherwise. Tasks are never run eagerly here either: tests that need a task run a real worker.
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-test-"))


def _redis_database_of_this_process(url: str, worker: str) -> str:
    """Under pytest-xdist each process of the suite (``gw0``, ``gw1``...) takes a Redis database of its own,
    counting down from the configured one, so that one's cache clears and queues never reach the other's.
    pytest-django does the same for the test database (``test_enclave_gw0``...)."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    database = base - int(worker.removeprefix("gw"))
    if database < 0:
        raise ValueError(f"REDIS_URL={url!r} leaves no Redis database for pytest-xdist's {worker}")
    return urlunsplit(parts._replace(path=f"/{database}"))


# Under pytest-xdist each process also takes a data directory of its own (job #1 of one process's database and
# job #1 of the other's would otherwise write the same adapter folder). Once per process: the workers and servers
# it starts inherit the variables and must not count down again.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker and os.environ.get("ENCLAVE_TEST_PROCESS") != _worker:
    _data_dir = Path(os.environ["ENCLAVE_DATA_DIR"]) / _worker
    _data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ENCLAVE_DATA_DIR"] = str(_data_dir)
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = _redis_database_of_this_process(os.environ["REDIS_URL"], _worker)
    os.environ["ENCLAVE_TEST_PROCESS"] = _worker

from enclave.settings.base import *  # noqa: E402, F403
from enclave.settings.base import DATA_DIR, DATABASE_IS_POSTGRES, DATABASES  # noqa: E402

SECRET_KEY = "test-only-secret-key-not-used-anywhere-else-0123456789abcdef"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]

if not DATABASE_IS_POSTGRES:
    # A file, not :memory:, so a worker subprocess can open the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(DATA_DIR) / "test.sqlite3")}

# WhiteNoise's middleware lists every static file when it is built, and the test client builds it for each Client
# (about 50 ms, a tenth of a matrix request). Looked up per request instead; the served files are the same.
WHITENOISE_AUTOREFRESH = True
