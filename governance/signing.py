"""The site's dossier signing key: an Ed25519 private key in a file outside the database
(``settings.DOSSIER_SIGNING_KEY_FILE``), made on first use with mode 0600 in a directory only its owner reads.
Whoever can read the database cannot sign a dossier; whoever holds the public key (in every bundle and on the
site staff's *Dossier signing key* page) can check one. Rotating the key: move the file away; the next export
makes a new one, and dossiers signed before keep verifying against the old public key."""

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from accounts.models import User
from accounts.services import audit_event_record
from core.errors import DomainError


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    path: Path

    @property
    def public_pem(self) -> bytes:
        return public_pem(self.private.public_key())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.private.public_key())

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data``, base64 with a newline (what ``manifest.sig`` holds)."""
        return base64.b64encode(self.private.sign(data)) + b"\n"


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, as hex pairs (what an auditor compares by eye)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def key_path() -> Path:
    return Path(settings.DOSSIER_SIGNING_KEY_FILE)


def signing_key(*, actor: User | None) -> SigningKey:
    """The site's key, made (0600, its directory 0700) and audited (``dossier.signing_key_create``, by ``actor``)
    when there is none. Raises ``DomainError`` for a file that is not an Ed25519 private key in PEM, or one other
    users may read."""
    path = key_path()
    if not path.exists():
        key, made = _create(path)
        if made:
            audit_event_record(
                actor=actor,
                action="dossier.signing_key_create",
                object_type="governance.signingkey",
                object_id=key.fingerprint.replace(":", "")[:16],
                payload={"fingerprint": key.fingerprint, "path": str(path)},
            )
        return key
    return _read(path)


def _read(path: Path) -> SigningKey:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise DomainError(
            f"The dossier signing key {path} may be read by other users (mode {path.stat().st_mode & 0o777:o}): "
            "make it readable by its owner only (chmod 600)."
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise DomainError(f"The dossier signing key {path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DomainError(f"The dossier signing key {path} is not an Ed25519 key.")
    return SigningKey(private=key, path=path)


def _create(path: Path) -> tuple[SigningKey, bool]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Written whole under another name, then linked into place: of two processes making the first key at once,
    # one links its key and the other reads that one, never a half-written file.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".dossier-key-")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(pem)
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read(path), False
    finally:
        os.unlink(temporary)
    return SigningKey(private=key, path=path), True
