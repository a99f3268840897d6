"""Erasure in stored files: every file of the projects' releases and adapters in the artifact store, their
import uploads still on disk, and what training jobs and generation runs left in the work directory.

A file is read back in its own format and its strings searched: JSONL and JSON value by value (so an escaped
character never hides a match), Parquet and Arrow through pyarrow (their pages are compressed: raw bytes
would hide a match), other text line by line. A file in none of these (weights) is listed as not searched.
A rewritten file keeps its name; its hashes before and after go into the erasure, so the release's manifest
still records what was built while ``release verify`` reports the file as changed."""

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from core.storage import artifact_storage
from evaluation.models import GenerationRun
from governance.matching import Matcher, replace_in, strings_in
from releases.artifacts import stored_under
from training.models import TrainingJob

TEXT_SUFFIXES = {".jsonl", ".upload", ".log", ".csv", ".tsv", ".txt", ".md", ".json", ".yaml", ".yml"}
_LINES_PER_BATCH = 2000


class Place:
    """One file: a name to show and record, its bytes, and how to write it back."""

    name: str

    def read(self) -> bytes:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError


@dataclass
class LocalFile(Place):
    path: Path
    name: str

    def read(self) -> bytes:
        return self.path.read_bytes()

    def write(self, data: bytes) -> None:
        _replace_local(self.path, data)


@dataclass
class StoredFile(Place):
    """A file in the artifact store (``name`` is its storage name)."""

    name: str

    def read(self) -> bytes:
        with artifact_storage().open(self.name, "rb") as stream:
            return bytes(stream.read())

    def write(self, data: bytes) -> None:
        storage = artifact_storage()
        if isinstance(storage, FileSystemStorage):
            _replace_local(Path(storage.path(self.name)), data)
            return
        storage.delete(self.name)
        saved = storage.save(self.name, ContentFile(data))
        if saved != self.name:
            raise RuntimeError(f"the artifact store saved {self.name} as {saved}")


def _replace_local(path: Path, data: bytes) -> None:
    """Write ``data`` over ``path`` at once (a temporary file renamed over it), keeping its mode (release files
    are read-only)."""
    mode = path.stat().st_mode & 0o777
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".erasure-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def places(project_ids: Sequence[int]) -> Iterator[Place]:
    """Every stored file of the projects that may hold their text."""
    storage = artifact_storage()
    for pk in sorted(project_ids):
        for prefix in (f"releases/{pk}", f"adapters/{pk}"):
            try:
                names = sorted(stored_under(storage, prefix))
            except (FileNotFoundError, NotADirectoryError):
                continue
            yield from (StoredFile(name) for name in names)
        uploads = Path(settings.MEDIA_ROOT) / "imports" / str(pk)
        yield from _local_files(uploads, Path(settings.MEDIA_ROOT))
    work = Path(settings.TRAINING_WORK_DIR)
    if not work.is_dir():
        return
    ids = set(project_ids)
    for directory in sorted(work.iterdir()):
        owner = _work_owner(directory.name)
        if owner is not None and owner in ids:
            yield from _local_files(directory, work)


def _work_owner(name: str) -> int | None:
    """The project of a work directory (``job-12``, ``generation-3``), if its job or run is known."""
    kind, _, number = name.partition("-")
    if not number.isdigit():
        return None
    if kind == "job":
        return TrainingJob.objects.filter(pk=int(number)).values_list("project_id", flat=True).first()
    if kind == "generation":
        return GenerationRun.objects.filter(pk=int(number)).values_list("project_id", flat=True).first()
    return None


def _local_files(directory: Path, relative_to: Path) -> Iterator[LocalFile]:
    if not directory.is_dir():
        return
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield LocalFile(path, f"{relative_to.name}/{path.relative_to(relative_to)}")


@dataclass(frozen=True)
class FileResult:
    name: str
    matches: int
    sha256_before: str
    sha256_after: str = ""
    searched: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "matches": self.matches,
            "sha256_before": self.sha256_before,
            "sha256_after": self.sha256_after,
        }


def scan(place: Place, matcher: Matcher, *, rewrite: bool) -> FileResult:
    """Search one file (and, with ``rewrite``, write it back with every match replaced by the tombstone)."""
    data = place.read()
    before = hashlib.sha256(data).hexdigest()
    suffix = Path(place.name).suffix.lower()
    if suffix == ".parquet":
        new, count = _columnar(data, matcher, _read_parquet, _write_parquet)
    elif suffix == ".arrow":
        new, count = _columnar(data, matcher, _read_arrow, _write_arrow)
    elif suffix == ".json":
        new, count = _json_document(data, matcher)
    elif suffix in TEXT_SUFFIXES or _looks_like_text(data):
        new, count = _lines(data, matcher)
    else:
        return FileResult(place.name, 0, before, searched=False)
    if not count:
        return FileResult(place.name, 0, before)
    if rewrite:
        place.write(new)
        return FileResult(place.name, count, before, hashlib.sha256(new).hexdigest())
    return FileResult(place.name, count, before)


def _looks_like_text(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a character cut at the end of the sample
    return True


def _rewrite_values(values: list[Any], matcher: Matcher) -> tuple[list[Any], int]:
    """JSON values with every match in their strings replaced, and how many."""
    texts = sorted({text for value in values for text in strings_in(value)})
    literals_of = {text: found for text, found in zip(texts, matcher.found(texts), strict=True) if found}
    if not literals_of:
        return values, 0
    total, out = 0, []
    for value in values:
        new, count = replace_in(value, literals_of)
        out.append(new)
        total += count
    return out, total


def _lines(data: bytes, matcher: Matcher) -> tuple[bytes, int]:
    """JSON Lines (each line a JSON value) or plain text, line by line."""
    lines = data.decode("utf-8", errors="surrogateescape").split("\n")
    total = 0
    for start in range(0, len(lines), _LINES_PER_BATCH):
        chunk = lines[start : start + _LINES_PER_BATCH]
        parsed: list[Any] = []
        for line in chunk:
            try:
                parsed.append(("json", json.loads(line)) if line.lstrip()[:1] in {"{", "["} else ("text", line))
            except ValueError:
                parsed.append(("text", line))
        rewritten, count = _rewrite_values([value for _, value in parsed], matcher)
        if not count:
            continue
        total += count
        for n, ((kind, old), new) in enumerate(zip(parsed, rewritten, strict=True)):
            if new != old:
                chunk[n] = orjson.dumps(new).decode() if kind == "json" else new
        lines[start : start + _LINES_PER_BATCH] = chunk
    return "\n".join(lines).encode("utf-8", errors="surrogateescape"), total


def _json_document(data: bytes, matcher: Matcher) -> tuple[bytes, int]:
    try:
        document = json.loads(data)
    except ValueError:
        return _lines(data, matcher)
    [new], count = _rewrite_values([document], matcher)
    if not count:
        return data, 0
    return (json.dumps(new, indent=2, ensure_ascii=False) + "\n").encode(), count


def _read_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def _write_parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


_IPC_FILE = b"enclave_ipc_file"  # a marker kept on the schema while rewriting: write the file format back


def _read_arrow(data: bytes) -> pa.Table:
    """An Arrow IPC stream (what ``datasets`` shards are), or else an IPC file."""
    try:
        return pa.ipc.open_stream(pa.BufferReader(data)).read_all()
    except pa.ArrowInvalid:
        table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
        return table.replace_schema_metadata({**(table.schema.metadata or {}), _IPC_FILE: b"1"})


def _write_arrow(table: pa.Table) -> bytes:
    metadata = dict(table.schema.metadata or {})
    as_file = metadata.pop(_IPC_FILE, None) is not None
    table = table.replace_schema_metadata(metadata or None)
    sink = pa.BufferOutputStream()
    writer = pa.ipc.new_file(sink, table.schema) if as_file else pa.ipc.new_stream(sink, table.schema)
    with writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _columnar(data: bytes, matcher: Matcher, read: Any, write: Any) -> tuple[bytes, int]:
    """A Parquet or Arrow table, read back row by row as Python values, rewritten with the same schema."""
    table = read(data)
    rows = table.to_pylist()
    rewritten, count = _rewrite_values(rows, matcher)
    if not count:
        return data, 0
    return write(pa.Table.from_pylist(rewritten, schema=table.schema)), count
