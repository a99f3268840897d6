"""The product's code version, recorded in release manifests and adapters' lineage."""

import subprocess
from functools import cache

from django.conf import settings


@cache
def code_version() -> str:
    """The product's code version: ``ENCLAVE_CODE_VERSION`` when set (images), else the git commit."""
    if settings.ENCLAVE_CODE_VERSION:
        return str(settings.ENCLAVE_CODE_VERSION)
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
