"""Use cases of the governance app, each audited: exporting an adapter's signed dossier; erasure of a data
subject's text and retention, short use cases over ``governance.erasure`` (the database), ``governance.erasure_files``
(stored files) and ``governance.retention``. An erasure's events carry an HMAC of the search term, never the term
or the text it matched."""

import hashlib
import hmac
import logging
import os
import re
import secrets
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from core.errors import DomainError
from governance import erasure as db
from governance import erasure_files as files
from governance.dossier import Bundle, canonical_json, dossier_gather
from governance.matching import Matcher, time_limited
from governance.models import Erasure, ErasureState, RetentionPolicy, Taint, TaintKind
from governance.rendering import dossier_html, dossier_pdf
from governance.signing import signing_key
from releases import services as release_services
from releases.models import Release, ReleaseState
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


logger = logging.getLogger(__name__)

_RELEASE_FILE = re.compile(r"^releases/(\d+)/(\d+)/")


def term_hmac(term: str, salt: str) -> str:
    """The salted HMAC of a search term with the site secret: proves which term was erased to someone who
    knows it, and tells nothing to someone who does not."""
    key = hashlib.sha256(f"enclave-erasure:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, f"{salt}\n{term}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@dataclass
class Preview:
    """What an erasure would replace: database fields and files, with the projects' names."""

    found: db.Found
    files: list[files.FileResult]
    unsearched: list[str] = field(default_factory=list)
    projects: dict[int, str] = field(default_factory=dict)

    @property
    def matches(self) -> int:
        return self.found.matches + sum(f.matches for f in self.files)


def erasure_preview(*, matcher: Matcher, project_ids: list[int]) -> Preview:
    """Every match of ``matcher`` in the projects, in the database and in stored files. Changes nothing."""
    with time_limited(), transaction.atomic():
        found = db.search(matcher, project_ids)
    with time_limited():
        scanned = [files.scan(place, matcher, rewrite=False) for place in files.places(project_ids)]
    matched = [result for result in scanned if result.matches]
    projects = db.project_names(found.project_ids() | set(project_ids))
    return Preview(found, matched, [r.name for r in scanned if not r.searched], projects)


def erasure_erase(
    *, actor: User, mode: str, term: str, reason: str, request_key: str, project_ids: list[int]
) -> Erasure:
    """Replace every match of the term in the projects by ``[ERASED]``: database fields (atomically), then
    stored files; put the affected items on hold; record the taint of what was built from them. A resend
    with the same ``request_key`` returns the erasure it made. Raises ``DomainError`` for a bad term, a
    missing reason, a reason that holds the term, or when nothing matches. A file that cannot be rewritten
    leaves the erasure ``files_failed`` naming the file (erasing the same term again retries it)."""
    reason = reason.strip()
    if not reason:
        raise DomainError("Say why this is erased (the request it answers).", field="reason")
    request_key = request_key.strip()[:64]
    if not request_key:
        raise DomainError("The form's key is missing: reload the page.", field="request_key")
    done = Erasure.objects.filter(request_key=request_key, actor=actor).first()
    if done is not None:
        return done
    matcher = Matcher.checked(mode, term)
    if any(matcher.found([reason])):
        raise DomainError("The reason holds the text being erased; describe the request without it.", field="reason")
    with time_limited():
        places = [place for place in files.places(project_ids) if files.scan(place, matcher, rewrite=False).matches]
    salt = secrets.token_hex(16)
    try:
        with time_limited(), transaction.atomic():
            found = db.search(matcher, project_ids, lock=True)
            if not found.matches and not places:
                raise DomainError("Nothing matches in the projects you manage: nothing was erased.", field="term")
            erasure = Erasure.objects.create(
                actor=actor, reason=reason, mode=mode, term_salt=salt, term_hmac=term_hmac(term, salt),
                request_key=request_key,
            )  # fmt: skip
            counts = db.rewrite(found, sorted(found.literals))
            item_ids = found.item_ids()
            db.hold_items(item_ids, erasure.pk)
            embeddings_deleted = db.drop_embeddings(item_ids)
            release_ids = {int(m.group(2)) for p in places if (m := _RELEASE_FILE.match(p.name))}
            tainted = db.taint_closure(
                item_ids=item_ids, release_ids=release_ids, run_ids=db.run_ids_of(found), project_ids=project_ids
            )
            Taint.objects.bulk_create(
                Taint(erasure=erasure, project_id=t.project_id, kind=t.kind, object_id=t.pk, label=t.label[:300],
                      why=t.why[:300])
                for t in tainted
            )  # fmt: skip
            touched = found.project_ids() | {t.project_id for t in tainted} | _projects_of(places)
            erasure.projects.set(sorted(touched))
            erasure.database_matches = found.matches
            erasure.counts = counts
            erasure.items = sorted(item_ids)
            erasure.report = db.report_of(tainted)
            erasure.save(update_fields=["database_matches", "counts", "items", "report"])
            payload = {
                "erasure": erasure.pk,
                "mode": mode,
                "term_hmac": erasure.term_hmac,
                "reason": reason,
                "database_matches": found.matches,
                "files_to_rewrite": len(places),
                "items_held": len(item_ids),
                "embeddings_deleted": embeddings_deleted,
                "tainted": {kind: len(rows) for kind, rows in erasure.report.items() if rows},
            }
            for project in Project.objects.filter(pk__in=touched).order_by("pk"):
                audit_event_record(
                    actor=actor, action="erasure.erase", target=erasure, project=project, payload=payload
                )
            if not touched:
                audit_event_record(actor=actor, action="erasure.erase", target=erasure, payload=payload)
    except IntegrityError:
        done = Erasure.objects.filter(request_key=request_key, actor=actor).first()
        if done is None:
            raise
        return done
    return _erase_files(erasure, places, matcher)


def _projects_of(places: list[files.Place]) -> set[int]:
    found = set()
    for place in places:
        match = re.match(r"^(?:releases|adapters|artifacts/imports)/(\d+)/", place.name)
        if match:
            found.add(int(match.group(1)))
    return found


def _erase_files(erasure: Erasure, places: list[files.Place], matcher: Matcher) -> Erasure:
    results, failures = [], []
    for place in places:
        try:
            result = files.scan(place, matcher, rewrite=True)
        except Exception as exc:  # the file's name and the error's type: its message may quote the file
            logger.warning("erasure #%s: %s could not be rewritten: %s", erasure.pk, place.name, type(exc).__name__)
            failures.append(f"{place.name}: {type(exc).__name__}")
            continue
        if result.matches:
            results.append(result.as_dict())
    with transaction.atomic():
        erasure.files = results
        erasure.file_matches = sum(r["matches"] for r in results)
        erasure.state = ErasureState.FILES_FAILED if failures else ErasureState.DONE
        erasure.failure = "; ".join(failures)
        erasure.save(update_fields=["files", "file_matches", "state", "failure"])
        audit_event_record(
            actor=erasure.actor,
            action="erasure.files",
            target=erasure,
            payload={
                "erasure": erasure.pk,
                "term_hmac": erasure.term_hmac,
                "files": [{k: r[k] for k in ("name", "matches", "sha256_before", "sha256_after")} for r in results],
                "failed": failures,
            },
        )
    return erasure


def erasure_release_rebuild(*, actor: User, release: Release) -> Release:
    """A new version of a tainted release from the same recipe: the erased items are on hold, so it leaves
    them out (and has a new hash). Raises ``DomainError`` for a release no erasure tainted or one not built."""
    taints = Taint.objects.filter(kind=TaintKind.RELEASE, object_id=release.pk)
    if not taints.exists():
        raise DomainError("No erasure tainted this release: rebuild it from its page instead.")
    if release.state not in (ReleaseState.BUILT, ReleaseState.DELETED):
        raise DomainError("Only a built release (or its tombstone) is rebuilt without erased items.")
    with transaction.atomic():
        rebuilt = release_services.release_rebuild(actor=actor, release=release)
        taints.filter(rebuilt_as__isnull=True).update(rebuilt_as=rebuilt)
        audit_event_record(
            actor=actor,
            action="erasure.rebuild",
            target=release,
            project=release.project,
            payload={
                "release": release.pk,
                "rebuilt_as": rebuilt.pk,
                "erasures": sorted({t.erasure_id for t in taints}),
            },
        )
    return rebuilt


# --- Retention ---------------------------------------------------------------------------------------------


RETENTION_FIELDS = ("import_upload_days", "failed_job_days", "orphaned_draft_days")


def retention_policy_update(*, actor: User, project: Project, values: dict[str, Any]) -> RetentionPolicy:
    """Set how many days a project keeps import uploads, failed jobs' files and orphaned drafts (None: until
    deleted by hand). Raises ``DomainError`` naming a field that is not a whole number from 1 to 3650."""
    cleaned: dict[str, int | None] = {}
    for name in RETENTION_FIELDS:
        if name not in values:
            continue
        value = values[name]
        if value in (None, ""):
            cleaned[name] = None
            continue
        try:
            days: int | None = int(value)
        except (TypeError, ValueError):
            raise DomainError("Give a whole number of days, or leave it empty to keep.", field=name) from None
        if days is None or not 1 <= days <= 3650:
            raise DomainError("Keep for 1 to 3650 days, or leave it empty to keep.", field=name)
        cleaned[name] = days
    with transaction.atomic():
        policy, _ = RetentionPolicy.objects.select_for_update().get_or_create(project=project)
        before = {name: getattr(policy, name) for name in RETENTION_FIELDS}
        for name, days in cleaned.items():
            setattr(policy, name, days)
        policy.updated_by = actor
        policy.updated_at = timezone.now()
        policy.save()
        audit_event_record(
            actor=actor,
            action="retention.update",
            target=policy,
            project=project,
            payload={"before": before, "after": {name: getattr(policy, name) for name in RETENTION_FIELDS}},
        )
    return policy


def retention_sweep() -> dict[int, dict[str, int]]:
    """Delete, in every project, what its policy keeps no longer (``governance.retention``); one audit event per
    project that lost something. Returns the counts per project id."""
    from governance.retention import sweep_project

    swept: dict[int, dict[str, int]] = {}
    for project in Project.objects.order_by("pk"):
        counts = sweep_project(project)
        if any(counts.values()):
            swept[project.pk] = counts
    return swept
