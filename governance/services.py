"""Use cases of the governance app: exporting an adapter's signed dossier."""

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_event_record
from core.errors import DomainError
from governance.dossier import Bundle, canonical_json, dossier_gather
from governance.rendering import dossier_html, dossier_pdf
from governance.signing import signing_key
from training.models import Adapter

VERIFIER = Path(__file__).with_name("verify_dossier.py")
MANIFEST_FORMAT = "enclave-dossier-manifest/1"
README = """Dossier of adapter {name} (#{pk}), exported {at} by {by}.

Open dossier.html (or dossier.pdf) to read it; dossier.json holds the same in full, and every file it cites is here.
manifest.json lists every file with its sha256 and is signed (Ed25519) in manifest.sig by the site's key, whose
public half is public_key.pem (fingerprint {fingerprint}; the site's administrators show it on their
"Dossier signing key" page: compare the two, or pass their copy with --public-key).

Verify it with Python 3.10+ and the cryptography package alone:

    python verify_dossier.py .
"""


@dataclass(frozen=True)
class DossierExport:
    directory: Path
    manifest_sha256: str
    fingerprint: str
    files: int


def dossier_export(*, actor: User, adapter: Adapter, directory: Path) -> DossierExport:
    """Write ``adapter``'s signed dossier into ``directory`` (made if missing; it must be empty) and audit the
    export (``dossier.export``, with the manifest's sha256 and the key's fingerprint).

    Raises ``DomainError`` when ``directory`` holds files or the signing key is unusable. Nothing is audited
    when writing fails; a half-written directory is removed."""
    if directory.exists() and any(directory.iterdir()):
        raise DomainError(f"{directory} is not empty: export a dossier into a new or empty directory.")
    key = signing_key(actor=actor)
    made = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with transaction.atomic():
            now = timezone.now()
            bundle = dossier_gather(adapter=adapter, exported_by=actor, exported_at=now)
            _renderings(bundle, adapter, actor, now, key.fingerprint, key.public_pem)
            for path, data in bundle.files.items():
                target = directory / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            manifest = {
                "format": MANIFEST_FORMAT,
                "adapter": adapter.pk,
                "exported_at": now.isoformat(),
                "signature": {"algorithm": "Ed25519", "file": "manifest.sig", "public_key": "public_key.pem"},
                "files": [
                    {"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                    for path, data in sorted(bundle.files.items())
                ],
            }
            manifest_bytes = canonical_json(manifest)
            (directory / "manifest.json").write_bytes(manifest_bytes)
            (directory / "manifest.sig").write_bytes(key.sign(manifest_bytes))
            manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
            audit_event_record(
                actor=actor,
                action="dossier.export",
                target=adapter,
                project=adapter.project,
                payload={
                    "manifest_sha256": manifest_sha256,
                    "key_fingerprint": key.fingerprint,
                    "files": len(bundle.files),
                    "audit_head_seq": bundle.content["audit"]["head"]["seq"],
                },
            )
    except BaseException:
        if made:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in directory.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return DossierExport(directory, manifest_sha256, key.fingerprint, len(bundle.files) + 2)


def _renderings(
    bundle: Bundle, adapter: Adapter, actor: User, now: datetime, fingerprint: str, public_pem: bytes
) -> None:
    """dossier.json, its HTML and PDF, the public key, the standalone verifier and a read-me."""
    content = bundle.content
    bundle.add("dossier.json", canonical_json(content))
    bundle.add("dossier.html", dossier_html(content, bundle.files))
    bundle.add("dossier.pdf", dossier_pdf(content, bundle.files, created=now))
    bundle.add("public_key.pem", public_pem)
    bundle.add("verify_dossier.py", VERIFIER.read_bytes())
    readme = README.format(
        name=adapter.name, pk=adapter.pk, at=now.isoformat(), by=actor.username, fingerprint=fingerprint
    )
    bundle.add("README.txt", readme.encode())


def dossier_zip(*, actor: User, adapter: Adapter) -> Path:
    """Export the dossier into a temporary directory and pack it as a zip (one folder inside,
    ``dossier-adapter-<id>/``, files in sorted order); returns the zip's path. The caller deletes it."""
    work = Path(tempfile.mkdtemp(prefix="enclave-dossier-"))
    try:
        folder = f"dossier-adapter-{adapter.pk}"
        exported = dossier_export(actor=actor, adapter=adapter, directory=work / folder)
        handle, name = tempfile.mkstemp(prefix=f"{folder}-", suffix=".zip")
        os.close(handle)
        archive = Path(name)
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as packed:
            for path in sorted(p for p in exported.directory.rglob("*") if p.is_file()):
                packed.write(path, f"{folder}/{path.relative_to(exported.directory).as_posix()}")
        return archive
    finally:
        shutil.rmtree(work, ignore_errors=True)
