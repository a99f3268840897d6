"""Where artifacts live: the ``artifacts`` storage (the filesystem under ``ENCLAVE_DATA_DIR`` or an
S3-compatible store inside the perimeter, as settings say)."""

from django.core.files.storage import Storage, storages


def artifact_storage() -> Storage:
    """The storage that holds release files, adapters and imports' uploads."""
    return storages["artifacts"]
