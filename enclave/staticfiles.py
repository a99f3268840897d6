"""The static files of ``manage.py serve``: hashed names and compressed copies, as production serves them, made
quickly enough to collect on a developer's start.

Production's storage (whitenoise's ``CompressedManifestStaticFilesStorage``) compresses with Brotli's slowest,
densest level, which makes collectstatic take half a minute and more (mostly the API docs' bundled scripts);
a start on a laptop uses a quicker level, whose files are a few per cent larger (the gzip copies are the same).
Collection runs again only when a source file changed.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
from django.conf import settings
from django.contrib.staticfiles import finders
from whitenoise.compress import Compressor  # type: ignore[import-untyped]
from whitenoise.storage import CompressedManifestStaticFilesStorage  # type: ignore[import-untyped]

BROTLI_QUALITY = 5


class QuickCompressor(Compressor):
    @staticmethod
    def compress_brotli(data: bytes) -> bytes:
        return bytes(brotli.compress(data, quality=BROTLI_QUALITY))


class QuickCompressedManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def create_compressor(self, **kwargs: Any) -> Compressor:
        return QuickCompressor(**kwargs)


def sources_fingerprint() -> str:
    """A digest of every static file the finders see (name, size, modification time) and of the storage that
    collects them: when it is unchanged since the last collection, there is nothing to collect."""
    digest = hashlib.sha256(f"{QuickCompressedManifestStaticFilesStorage.__module__} {BROTLI_QUALITY}".encode())
    found = []
    for finder in finders.get_finders():
        for name, storage in finder.list(["CVS", ".*", "*~"]):
            stat = os.stat(storage.path(name))
            found.append(f"{getattr(storage, 'prefix', '') or ''}/{name} {stat.st_size} {stat.st_mtime_ns}")
    for line in sorted(found):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _stamp(static_root: Path) -> Path:
    return static_root.with_name(static_root.name + ".sources")


def stale(static_root: Path) -> bool:
    """Whether the files in ``static_root`` are missing or older than their sources."""
    stamp = _stamp(static_root)
    if not stamp.exists() or not (static_root / "staticfiles.json").exists():
        return True
    return stamp.read_text() != sources_fingerprint()


class Collection:
    """``collectstatic`` into ``static_root``, running under ``env`` (the settings the web gets: STATIC_ROOT set,
    hashed names, gzip and Brotli copies) while the caller does other work."""

    def __init__(self, static_root: Path, env: dict[str, str]) -> None:
        self.static_root = static_root
        self.fingerprint = sources_fingerprint()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait(self) -> None:
        """Wait for it to finish. Raises ``CalledProcessError`` with collectstatic's output when it failed."""
        output, _ = self.process.communicate()
        if self.process.returncode:
            raise subprocess.CalledProcessError(self.process.returncode, self.process.args, output)
        _stamp(self.static_root).write_text(self.fingerprint)
