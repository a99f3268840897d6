"""A release's files around its rows: the exporters closed, the datasheet and the manifest written (the
release hash is the manifest's sha256), every file moved into the artifact store, and read back from it
to verify them, to export them, or to delete them."""

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage

from annotation.models import ImportBatch, RubricVersion
from annotation.selectors import annotation_settings, current_rubric
from core.errors import DomainError
from core.storage import artifact_storage
from core.version import code_version
from preferences.selectors import preference_settings
from releases import drift_datasheet
from releases.datasheet import Tally, built_contents, render
from releases.datasheet_markdown import markdown
from releases.exporters import Exporter, WrittenFile, file_sha256
from releases.imported import imported_origin
from releases.models import Release, ReleaseFile
from releases.recipe import Recipe

MANIFEST_FORMAT = "enclave-release/1"


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def close_exporters(exporters: list[Exporter], timers: dict[str, float]) -> list[WrittenFile]:
    """Close every exporter (its time added to ``timers``) and return the files they wrote."""
    files: list[WrittenFile] = []
    for exporter in exporters:
        began = time.perf_counter()
        files += exporter.close()
        timers[type(exporter).__name__] += time.perf_counter() - began
    return files


def write_datasheet_and_manifest(
    release: Release, root: Path, manifest: dict[str, Any], tally: Tally, files: list[WrittenFile]
) -> tuple[dict[str, Any], str]:
    """Write the datasheet and the manifest (listing every file) into ``root``, add them to ``files`` and
    return the datasheet and the release hash."""
    contents = built_contents(root, release.kind)
    sheet = render(manifest=manifest, tally=tally, assumptions=release.assumptions, contents=contents)
    sheet |= drift_datasheet.sections(release)  # eval-set health: drift at build time, coverage gaps
    health = sheet.get("eval_health") or {}
    sheet["h_gaps"] += [
        f"{gap['key']} “{gap['value']}”: {gap['eval_items']} evaluation item(s), fewer than "
        f"{health['min_eval_per_stratum']} (coverage gap)"
        for gap in health.get("coverage_gaps", [])
    ]
    text = markdown(manifest, sheet)
    for name, data in (("datasheet.json", canonical_json(sheet)), ("datasheet.md", text.encode())):
        (root / name).write_bytes(data)
        files.append(WrittenFile(name, "datasheet", "", None, len(data), hashlib.sha256(data).hexdigest()))
    manifest["files"] = sorted((_file_entry(f) for f in files), key=lambda f: f["path"])
    manifest_bytes = canonical_json(manifest)
    (root / "manifest.json").write_bytes(manifest_bytes)
    release_hash = hashlib.sha256(manifest_bytes).hexdigest()
    files.append(WrittenFile("manifest.json", "manifest", "", None, len(manifest_bytes), release_hash))
    return sheet, release_hash


def _file_entry(f: WrittenFile) -> dict[str, Any]:
    return {
        "path": f.path,
        "format": f.fmt,
        "split": f.split,
        "rows": f.rows,
        "bytes": f.size_bytes,
        "sha256": f.sha256,
    }


def manifest(
    release: Release,
    recipe: Recipe,
    tally: Tally,
    batches: dict[int, int],
    annotators: list[str],
    rubric_versions: set[int],
) -> dict[str, Any]:
    """The manifest without its file list: what the release holds, where it came from and how it was made.
    ``annotators`` are the pseudonyms of everyone whose work it uses."""
    project = release.project
    batch_rows = ImportBatch.objects.filter(pk__in=[b for b in batches if b]).order_by("pk")
    scrubbed: dict[str, int] = {}
    for batch in batch_rows:
        for kind, count in (batch.scrub_counts or {}).items():
            scrubbed[kind] = scrubbed.get(kind, 0) + int(count)
    if release.kind == "preference":
        current = current_rubric(project)
        versions = [current] if current else []
        settings_row = preference_settings(project)
        procedure = {
            "judgement_mode": settings_row.mode,
            "rationale_required": settings_row.rationale_required,
            "gold_rate": settings_row.gold_rate,
            "adjudication_below_agreement": settings_row.adjudication_threshold,
            "aggregation": recipe.aggregation,
        }
    else:
        versions = list(RubricVersion.objects.filter(project=project, version__in=rubric_versions).order_by("version"))
        procedure = {"review": "four-eyes: an annotation is approved by a reviewer other than its annotator"}
    procedure["annotators_per_item"] = annotation_settings(project).annotators_per_item
    imported = imported_origin(release)
    return {
        **({"imported": imported} if imported else {}),  # absent, not empty, so other releases hash as before
        "format": MANIFEST_FORMAT,
        "project": {"id": project.pk, "name": project.name},
        "kind": release.kind,
        "recipe": recipe.canonical(),
        "counts": tally.as_dict(),
        "rubric_versions": [
            {
                "version": v.version,
                "guidelines_sha256": hashlib.sha256(v.guidelines.encode()).hexdigest(),
                "criteria": [c.get("key", "") for c in v.criteria],
            }
            for v in versions
        ],
        "import_batches": [
            {
                "id": b.pk,
                "source": b.source_name,
                "format": b.fmt,
                "sha256": b.sha256,
                "purpose": b.purpose,
                "items_used": batches.get(b.pk, 0),
            }
            for b in batch_rows
        ],
        "pii_scrubbing": dict(sorted(scrubbed.items())),
        "procedure": procedure,
        "annotators": annotators,
        "code_version": code_version(),
        "files": [],
    }


def store(release: Release, root: Path, files: list[WrittenFile]) -> None:
    """Move (local filesystem) or upload (other storages) every file into the artifact store."""
    storage = artifact_storage()
    for f in files:
        name = f"{release.storage_prefix}/{f.path}"
        source = root / f.path
        if isinstance(storage, FileSystemStorage):
            target = Path(storage.path(name))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
            target.chmod(0o444)
            continue
        with source.open("rb") as stream:
            stored = storage.save(name, File(stream, name=f.path))
        if stored != name:
            raise RuntimeError(f"the artifact store renamed {name} to {stored}")


def delete_stored(release: Release) -> None:
    """Remove the release's files from the artifact store (a failed build's, a deleted release's): every
    file under its prefix, recorded or not (a build that failed after storing files recorded none)."""
    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        shutil.rmtree(storage.path(release.storage_prefix), ignore_errors=True)
        return
    names = {f.storage_name for f in ReleaseFile.objects.filter(release=release)}
    names.update(stored_under(storage, release.storage_prefix))
    for name in sorted(names):
        storage.delete(name)


def stored_under(storage: Storage, prefix: str) -> Iterator[str]:
    """The names of every file in ``storage`` under ``prefix``."""
    folders, files = storage.listdir(prefix)
    yield from (f"{prefix}/{name}" for name in files)
    for folder in folders:
        yield from stored_under(storage, f"{prefix}/{folder}")


def stored_problems(release: Release) -> list[str]:
    """Re-hash every stored file of a built release and the manifest: the problems found (empty: intact)."""
    problems = []
    storage = artifact_storage()
    recorded = {f.path: f for f in release.files.all()}
    manifest_files = {f["path"]: f for f in (release.manifest or {}).get("files", [])}
    for path, entry in sorted(recorded.items()):
        name = f"{release.storage_prefix}/{path}"
        if not storage.exists(name):
            problems.append(f"{path}: missing from the artifact store")
            continue
        digest = hashlib.sha256()
        with storage.open(name, "rb") as stream:
            for chunk in iter(lambda: stream.read(1024 * 1024), b""):
                digest.update(chunk)
        actual = digest.hexdigest()
        if actual != entry.sha256:
            problems.append(f"{path}: sha256 {actual} differs from the recorded {entry.sha256}")
        if path != "manifest.json" and manifest_files.get(path, {}).get("sha256") != entry.sha256:
            problems.append(f"{path}: the manifest records another hash")
    if set(manifest_files) != set(recorded) - {"manifest.json"}:
        problems.append("the manifest and the release's file list differ")
    if hashlib.sha256(canonical_json(release.manifest)).hexdigest() != release.hash:
        problems.append("the stored manifest does not hash to the release hash")
    if recorded.get("manifest.json") and recorded["manifest.json"].sha256 != release.hash:
        problems.append("manifest.json is not recorded under the release hash")
    return problems


def copy_out(release: Release, target: Path, formats: set[str]) -> list[Path]:
    """Copy the release's files (all, or those of ``formats``) from the artifact store to ``target``, each
    checked against its recorded hash. Raises ``DomainError`` for a file that does not match."""
    storage = artifact_storage()
    written = []
    for f in release.files.all():
        if formats and f.fmt not in formats:
            continue
        out = target / f.path
        out.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(f.storage_name, "rb") as source, out.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1024 * 1024)
        if file_sha256(out) != f.sha256:
            raise DomainError(f"{f.path} does not match its recorded hash: run release_verify.")
        written.append(out)
    return written
