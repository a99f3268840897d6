"""The embedded default: runs on one machine with nothing else installed.

The secret key is generated on first start and kept in the data directory, so sessions survive a
restart without a key ever living in the repository.
"""

import secrets

from enclave.settings.base import *  # noqa: F403
from enclave.settings.base import DATA_DIR, STORAGES
from enclave.settings.env import env_optional_str


def _local_secret_key() -> str:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = env_optional_str("SECRET_KEY") or _local_secret_key()

# `manage.py serve` collects the static files into STATIC_ROOT (in the data directory) and sets it for the web:
# then pages name them hashed, and they are answered compressed and cacheable for a year, as in production.
# Without it (runserver, a shell) they are served from the source folders as they are.
_static_root = env_optional_str("STATIC_ROOT")
if _static_root:
    STATIC_ROOT = _static_root
    WHITENOISE_USE_FINDERS = False
    STORAGES = {
        **STORAGES,
        "staticfiles": {"BACKEND": "enclave.staticfiles.QuickCompressedManifestStaticFilesStorage"},
    }
