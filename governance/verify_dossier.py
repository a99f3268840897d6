#!/usr/bin/env python3
"""Verify an Enclave dossier without Enclave: needs only Python 3.10+ and the ``cryptography`` package.

    python verify_dossier.py DOSSIER_DIR [--public-key SITE_KEY.pem]

It checks that ``manifest.sig`` is an Ed25519 signature of ``manifest.json`` by the public key (the bundle's
``public_key.pem``, or the one you got from the site's administrators: pass it with ``--public-key``, and compare
the fingerprint printed with the one on the site's *Dossier signing key* page); that every file the manifest
lists is there with its size and sha256, and that no other file is; and that every audit event in
``audit/events.jsonl`` hashes to its recorded hash and sits in the chain of links in ``audit/chain.jsonl`` that
leads to the head the dossier names. It prints each check as OK or FAILED and exits with 1 naming every file
that failed (0 when all is well, 2 when the directory is not a dossier)."""

import argparse
import base64
import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MANIFEST, SIGNATURE, PUBLIC_KEY = "manifest.json", "manifest.sig", "public_key.pem"
EVENTS, CHAIN, DOSSIER = "audit/events.jsonl", "audit/chain.jsonl", "dossier.json"
CHUNK = 1 << 20


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    """The audit chain's rule: sha256 of the previous hash, a newline and the event's canonical JSON."""
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


class Report:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.failed: list[str] = []

    def ok(self, name: str, note: str = "") -> None:
        self.out.write(f"OK      {name}{'  ' + note if note else ''}\n")

    def fail(self, name: str, reason: str) -> None:
        self.out.write(f"FAILED  {name}: {reason}\n")
        if name not in self.failed:
            self.failed.append(name)


def _load_key(path: Path, report: Report, name: str) -> Ed25519PublicKey | None:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        report.fail(name, f"not a PEM public key ({exc})")
        return None
    if not isinstance(key, Ed25519PublicKey):
        report.fail(name, "not an Ed25519 public key")
        return None
    return key


def check_signature(root: Path, report: Report, public_key: Path | None) -> None:
    key_path = public_key or root / PUBLIC_KEY
    key = _load_key(key_path, report, str(public_key) if public_key else PUBLIC_KEY)
    if key is None:
        return
    try:
        signature = base64.b64decode((root / SIGNATURE).read_bytes().strip(), validate=True)
    except (OSError, ValueError) as exc:
        report.fail(SIGNATURE, f"not a base64 signature ({exc})")
        return
    try:
        key.verify(signature, (root / MANIFEST).read_bytes())
    except (InvalidSignature, ValueError):
        report.fail(MANIFEST, f"its signature in {SIGNATURE} does not match (the manifest or the signature was")
        report.failed.append(SIGNATURE)
        report.out.write(f"        changed, or another key signed it; key fingerprint {fingerprint(key)})\n")
        return
    report.ok(f"{MANIFEST} signed by {SIGNATURE}", f"key fingerprint {fingerprint(key)}")


def check_files(root: Path, manifest: dict[str, Any], report: Report) -> None:
    listed = set()
    for entry in manifest.get("files", []):
        name = str(entry["path"])
        listed.add(name)
        path = root / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            report.fail(name, "the manifest names a path outside the dossier")
        elif not path.is_file():
            report.fail(name, "missing")
        elif path.stat().st_size != entry["bytes"]:
            report.fail(name, f"{path.stat().st_size} bytes, the manifest says {entry['bytes']}")
        elif file_sha256(path) != entry["sha256"]:
            report.fail(name, "sha256 differs from the manifest's")
        else:
            report.ok(name)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name not in listed and name not in (MANIFEST, SIGNATURE):
            report.fail(name, "not listed in the manifest")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_audit(root: Path, report: Report) -> None:
    """Each event recomputes to its hash; the links run without a gap from the first event to the head."""
    if EVENTS in report.failed or CHAIN in report.failed or DOSSIER in report.failed:
        return  # already reported: a changed file proves nothing about the chain
    try:
        events, links = _jsonl(root / EVENTS), _jsonl(root / CHAIN)
        head = json.loads((root / DOSSIER).read_text(encoding="utf-8"))["audit"]["head"]
    except (OSError, ValueError, KeyError) as exc:
        report.fail(EVENTS, f"unreadable ({exc})")
        return
    by_seq = {link["seq"]: link for link in links}
    for before, after in itertools.pairwise(links):
        if after["seq"] != before["seq"] + 1 or after["prev_hash"] != before["hash"]:
            report.fail(CHAIN, f"the links break between #{before['seq']} and #{after['seq']}")
            return
    if links and (links[-1]["seq"], links[-1]["hash"]) != (head["seq"], head["hash"]):
        report.fail(CHAIN, "the links do not end at the head the dossier names")
        return
    for entry in events:
        event, seq = entry["event"], entry["event"]["seq"]
        link = by_seq.get(seq)
        if event_hash(entry["prev_hash"], event) != entry["hash"]:
            report.fail(EVENTS, f"event #{seq} does not hash to its recorded hash")
        elif link is None or (link["prev_hash"], link["hash"]) != (entry["prev_hash"], entry["hash"]):
            report.fail(EVENTS, f"event #{seq} is not the link #{seq} of the chain")
    if EVENTS not in report.failed:
        report.ok("audit chain", f"{len(events)} events recompute and link to head #{head['seq']} {head['hash']}")


def verify(root: Path, public_key: Path | None = None, out: Any = None) -> list[str]:
    """Every check; returns the names of the files that failed (empty: the dossier is intact)."""
    report = Report(out or sys.stdout)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.fail(MANIFEST, f"unreadable ({exc})")
        return report.failed
    check_signature(root, report, public_key)
    check_files(root, manifest, report)
    check_audit(root, report)
    return report.failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="the unpacked dossier")
    parser.add_argument("--public-key", type=Path, help="the site's public key (PEM), instead of the bundle's")
    args = parser.parse_args(argv)
    if not (args.directory / MANIFEST).is_file():
        sys.stderr.write(f"{args.directory} is not a dossier: it has no {MANIFEST}.\n")
        return 2
    failed = verify(args.directory, args.public_key)
    if failed:
        sys.stdout.write(f"FAILED: {', '.join(failed)}\n")
        return 1
    sys.stdout.write("Dossier verified: every file is as signed.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
