"""Test settings: the same stack as the mode under test, plus fast hashing and an isolated data dir.

Under ``CI=true`` the suite must run on PostgreSQL and Redis; ``tests/conftest.py`` refuses to start
otherwise. Tasks are never run eagerly here either: tests that need a task run a real worker.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-test-"))

from enclave.settings.base import *  # noqa: F403
from enclave.settings.base import DATA_DIR, DATABASE_IS_POSTGRES, DATABASES

SECRET_KEY = "test-only-secret-key-not-used-anywhere-else-0123456789abcdef"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]

if not DATABASE_IS_POSTGRES:
    # A file, not :memory:, so a worker subprocess can open the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(DATA_DIR) / "test.sqlite3")}
