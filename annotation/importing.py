"""The import pipeline: an upload streamed to disk, parsed line by line, scrubbed of PII, de-duplicated on
the scrubbed text and inserted all or nothing, in the request or on a worker, with a line-numbered report."""

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation import peer_import, selectors
from annotation.import_report import ImportReport
from annotation.models import (
    AnnotationSettings,
    ImportBatch,
    ImportStatus,
    Item,
    PiiMode,
    PiiUncertain,
    Slot,
)
from annotation.parsing import CsvMapping, ImportFormat, LineError, Message, Record, content_hash, parse
from annotation.peer_import import PEER_FORMATS
from annotation.pii import PiiPolicy, Scrubber, compile_policy
from core import followups
from core.db import connection_lost, describe, lost_connection_reason, on_fresh_connection
from core.dispatch import BrokerUnreachable, reach_broker, send_on_commit
from core.errors import DomainError

logger = logging.getLogger(__name__)

# Files up to this size are imported within the request; larger ones by a worker, with a progress bar.
SYNC_IMPORT_BYTES = 2 * 1024 * 1024
_INSERT_CHUNK = 1000


def import_start(
    *,
    actor: User,
    project: Project,
    upload: IO[bytes],
    source_name: str,
    fmt: str,
    csv_mapping: dict[str, Any] | None = None,
    skip_bad_lines: bool = False,
    purpose: str = "annotation",
    fields: dict[str, Any] | None = None,
    annotators: dict[str, Any] | None = None,
) -> ImportBatch:
    """Store the uploaded file, record an ``ImportBatch`` and import it: small
    files at once, large ones on a worker. ``purpose="mixin"`` imports general-purpose conversations with
    their answers, which releases may mix into training and annotators never see. Raises ``DomainError``
    for an unknown format or purpose, or a CSV import without a prompt column. The Imports page and the API
    ask ``annotation.formats.import_format_check`` first; this takes either kind of work (the demo and
    fixtures build projects that hold both).

    Another tool's file (``PEER_FORMATS``) waits for the data lead's mapping (``annotation.peer_mapping``) unless
    ``annotators`` (and ``fields``) given here map every annotator it names; a wrong one raises ``DomainError``."""
    peer = fmt in PEER_FORMATS
    if fmt not in ImportFormat.__members__.values() and not peer:
        raise DomainError(f"Unknown import format “{fmt}”.", field="fmt")
    if purpose not in {"annotation", "mixin"}:
        raise DomainError(f"Unknown import purpose “{purpose}”.", field="purpose")
    if purpose == "mixin" and (fmt == ImportFormat.COMPARISON_JSONL or peer):
        raise DomainError(
            "A general-purpose mix-in is conversations with answers, not comparisons or another tool's export.",
            field="fmt",
        )
    if fmt == ImportFormat.CSV and not (csv_mapping or {}).get("prompt"):
        raise DomainError("A CSV import needs the name of the prompt column.", field="csv_mapping")
    incoming = Path(settings.MEDIA_ROOT) / "imports" / str(project.pk)
    incoming.mkdir(parents=True, exist_ok=True)
    size = 0
    stored = incoming / f"{timezone.now():%Y%m%dT%H%M%S%f}.upload"
    with stored.open("wb") as out:
        for chunk in iter(lambda: upload.read(1024 * 1024), b""):
            size += len(chunk)
            out.write(chunk)
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            project=project,
            uploaded_by=actor,
            source_name=source_name[:255],
            fmt=fmt,
            purpose=purpose,
            csv_mapping=csv_mapping,
            skip_bad_lines=skip_bad_lines,
            sha256="",  # set when the import has run: a hash of the scrubbed content, never of the upload
            size_bytes=size,
            stored_path=str(stored),
            status=ImportStatus.MAPPING if peer else ImportStatus.QUEUED,
        )
        audit_event_record(
            actor=actor,
            action="import.start",
            target=batch,
            project=project,
            payload={
                "source": batch.source_name,
                "bytes": size,
                "format": fmt,
                "purpose": purpose,
            },
        )
        if not peer:
            send_if_large(batch)
    if peer:
        from annotation.peer_mapping import peer_start  # it stands on this module: the mapping step, then the run

        return peer_start(actor, batch, fields=fields, annotators=annotators)
    return run_if_small(batch)


def send_if_large(batch: ImportBatch) -> None:
    """Within the transaction that queued the batch: a large file goes to a worker once it commits."""
    if batch.size_bytes > SYNC_IMPORT_BYTES:
        from annotation.tasks import import_run_task

        send_on_commit(
            lambda: import_run_task.delay(batch.pk),
            what=f"import #{batch.pk}",
            on_refused=lambda reason: _fail_unsent_import(batch.pk, reason),
        )


def run_if_small(batch: ImportBatch) -> ImportBatch:
    if batch.size_bytes <= SYNC_IMPORT_BYTES:
        import_run(batch_id=batch.pk)
    batch.refresh_from_db()  # done, or queued, or failed because its task could not be sent
    return batch


class _Refused(Exception):
    """Bad lines without skip-bad-lines: roll the whole import back."""


def import_run(*, batch_id: int) -> ImportBatch:
    """Parse, validate, scrub, de-duplicate and insert a batch's items in one transaction.

    With bad lines and without ``skip_bad_lines`` nothing is written and the batch is ``refused`` with
    its line-numbered report. Every outcome is audited. Never raises for bad input. A lost database
    connection rolls everything back and marks the batch ``failed`` in words, on a fresh connection (the
    driver's text goes to the log); any other unexpected error marks it ``failed`` with its reason and is
    re-raised.
    """
    batch = ImportBatch.objects.select_related("project").get(pk=batch_id)
    if batch.status not in {ImportStatus.QUEUED, ImportStatus.RUNNING}:
        return batch
    if not ImportBatch.objects.filter(pk=batch.pk, status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING]).update(
        status=ImportStatus.RUNNING
    ):
        return ImportBatch.objects.get(pk=batch.pk)  # failed meanwhile (its task was reported unsent)
    report = ImportReport()
    if not Path(batch.stored_path).is_file():  # deleted by hand, or a data directory restored without it
        gone = "The uploaded file is no longer on the server, so nothing was imported: upload it again."
        return finish_import(batch, report, ImportStatus.FAILED, failure=gone)
    try:
        with transaction.atomic():
            _import_items(batch, report)
            if report.bad and not batch.skip_bad_lines:
                raise _Refused
            status = ImportStatus.DONE
    except _Refused:
        status = ImportStatus.REFUSED
        report.nothing_kept()
    except Exception as exc:
        report.nothing_kept()  # rolled back
        if not connection_lost(exc):
            finish_import(batch, report, ImportStatus.FAILED, failure=f"{type(exc).__name__}: {exc}")
            raise
        logger.error("Import #%s: database connection lost at line %s: %s", batch.pk, report.lines, describe(exc))
        failure = lost_connection_reason("import")
        return on_fresh_connection(
            lambda: finish_import(batch, report, ImportStatus.FAILED, failure=failure), what=f"import #{batch.pk}"
        )
    return finish_import(batch, report, status)


def _records(batch: ImportBatch, stream: IO[bytes]) -> Iterator[Record | LineError]:
    mapping = None
    if batch.csv_mapping:
        raw = batch.csv_mapping
        mapping = CsvMapping(
            prompt=raw["prompt"],
            response=raw.get("response") or None,
            system=raw.get("system") or None,
            id=raw.get("id") or None,
            metadata=tuple(raw.get("metadata") or ()),
        )
    yield from parse(stream, ImportFormat(batch.fmt), csv_mapping=mapping)


def project_scrubber(config: AnnotationSettings, *, replace: bool = False) -> Scrubber:
    """The project's PII scrubber, as its imports use it. ``replace=True`` replaces values even when the
    project's policy rejects items holding PII: for text that must be shown scrubbed rather than refused (a
    model's generated answers)."""
    return compile_policy(
        PiiPolicy(
            mode="reject" if config.pii_mode == PiiMode.REJECT and not replace else "replace",
            extra_patterns=tuple((t, p) for t, p in config.pii_patterns),
            terms=tuple(config.pii_terms),
            default_phone_region=config.pii_phone_region,
            scrub_uncertain=config.pii_uncertain != PiiUncertain.KEEP,
        )
    )


def _import_items(batch: ImportBatch, report: ImportReport) -> None:
    config = selectors.annotation_settings(batch.project)
    scrubber = project_scrubber(config)
    with open(batch.stored_path, "rb") as stream:  # its position drives the progress bar
        if batch.fmt in PEER_FORMATS:
            progress = functools.partial(_progress, batch, report)
            peer_import.import_peer_stream(batch, report, config, scrubber, stream, progress)
        else:
            _import_stream(batch, report, config, scrubber, stream)


def _import_stream(
    batch: ImportBatch, report: ImportReport, config: AnnotationSettings, scrubber: Scrubber, stream: IO[bytes]
) -> None:
    project = batch.project
    seen_in_file: dict[str, int] = {}
    pending: list[tuple[int, Item]] = []
    for entry in _records(batch, stream):
        report.lines = max(report.lines, entry.line)
        if isinstance(entry, LineError):
            report.error(entry.line, entry.reason)
            continue
        has_response = entry.response is not None
        if batch.purpose == "mixin" and not has_response:
            report.error(entry.line, "a general-purpose mix-in line needs the assistant's answer")
            continue
        texts = [m.content for m in entry.messages] + ([entry.response] if entry.response is not None else [])
        texts += [c.content for c in entry.candidates]  # one item: placeholders stay consistent across all
        result = scrubber.scrub(texts)
        for kind, count in result.counts.items():
            report.scrub_counts[kind] = report.scrub_counts.get(kind, 0) + count
        for finding in result.uncertain:
            report.uncertain_value(entry.line, finding)
        if result.found and config.pii_mode == PiiMode.REJECT:
            found = ", ".join(f"{k}×{n}" for k, n in sorted(result.counts.items()))
            report.skip(entry.line, f"contains PII ({found}); the project's policy rejects such items", pii=True)
            continue
        scrubbed = result.texts
        n = len(entry.messages)
        messages = [{"role": m.role, "content": scrubbed[i]} for i, m in enumerate(entry.messages)]
        response = scrubbed[n] if has_response else None
        first_candidate = n + int(has_response)
        candidates = [
            {"content": scrubbed[first_candidate + i], "provenance": c.provenance()}
            for i, c in enumerate(entry.candidates)
        ]
        # Duplicates are found on the scrubbed text, and only its hash is stored: a hash of the raw text
        # would let anyone holding it confirm a guessed phone number.
        digest = content_hash(
            [Message(role=m.role, content=scrubbed[i]) for i, m in enumerate(entry.messages)],
            response,
            scrubbed[first_candidate:],
        )
        report.content_digest.update(f"{entry.line}\t{digest}\n".encode())
        if digest in seen_in_file:
            report.skip(entry.line, f"same conversation as line {seen_in_file[digest]}")
            continue
        seen_in_file[digest] = entry.line
        item = Item(
            project=project,
            batch=batch,
            kind="mixin" if batch.purpose == "mixin" else ("comparison" if candidates else "sft"),
            external_id=entry.external_id or "",
            messages=messages,
            response=response,
            candidates=candidates,
            gold=_gold_in_candidate_ids(entry.gold),
            metadata=entry.metadata,
            content_hash=digest,
        )
        pending.append((entry.line, item))
        if len(pending) >= _INSERT_CHUNK:
            _insert(batch, pending, report, config.annotators_per_item)
            _progress(batch, report, stream.tell())
            pending = []
    if pending:
        _insert(batch, pending, report, config.annotators_per_item)


def _gold_in_candidate_ids(gold: Any) -> Any:
    """Files number candidates from 1; inside Enclave a candidate's id is its index (from 0)."""
    if gold is None or gold == "tie":
        return gold
    if isinstance(gold, int):
        return gold - 1
    return [[number - 1 for number in tier] for tier in gold]


def _progress(batch: ImportBatch, report: ImportReport, position: int) -> None:
    """The import is one transaction, so its rows are invisible until the end; progress goes to the
    cache, which every process shares, and the batch page reads it from there."""
    percent = min(99, int(100 * position / batch.size_bytes)) if batch.size_bytes else 0
    with contextlib.suppress(BrokerUnreachable):  # the cache is the broker's Redis: away, the import goes on
        reach_broker(
            lambda: cache.set(f"import-progress:{batch.pk}", {"lines": report.lines, "percent": percent}, timeout=3600)
        )


def _insert(batch: ImportBatch, pending: list[tuple[int, Item]], report: ImportReport, k: int) -> None:
    project = batch.project
    hashes = [item.content_hash for _, item in pending]
    existing = dict(Item.objects.filter(project=project, content_hash__in=hashes).values_list("content_hash", "id"))
    fresh = []
    for line, item in pending:
        if item.content_hash in existing:
            report.skip(line, f"already in the project as item #{existing[item.content_hash]}")
        else:
            fresh.append(item)
    if report.bad and not batch.skip_bad_lines:
        return  # the batch will be refused: keep reading only to report every bad line
    created = Item.objects.bulk_create(fresh, batch_size=_INSERT_CHUNK)
    # Gold comparisons get no slots: every annotator may see each of them once, mixed in at the project's
    # gold rate by ``preferences.services.comparison_next``, so they stay out of the k-per-item queue.
    Slot.objects.bulk_create(
        [
            Slot(item=item, project=project, index=i, priority=item.priority)
            for item in created
            if item.gold is None and item.kind != "mixin"
            for i in range(k)
        ],
        batch_size=_INSERT_CHUNK,
    )
    report.imported += len(created)


def _fail_unsent_import(batch_id: int, reason: str) -> None:
    """The import's task never reached the broker: fail it with the reason (nothing was imported)."""
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == ImportStatus.QUEUED:  # a worker that got the task after all moves it on under this lock
            finish_import(batch, ImportReport(), ImportStatus.FAILED, failure=reason)


def finish_import(batch: ImportBatch, report: ImportReport, status: str, *, failure: str = "") -> ImportBatch:
    """Record the outcome, delete the uploaded file (raw text must not outlive the import) and audit."""
    Path(batch.stored_path).unlink(missing_ok=True)
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().get(pk=batch.pk)
        batch.status = status
        batch.lines_read = report.lines
        batch.imported_count = report.imported
        batch.bad_line_count = report.bad
        batch.duplicate_count = report.duplicates
        batch.pii_rejected_count = report.pii_rejected
        batch.errors = report.errors
        batch.duplicates = report.skipped
        batch.scrub_counts = report.scrub_counts
        batch.uncertain_count = report.uncertain_count
        batch.sha256 = report.content_digest.hexdigest()
        batch.uncertain = report.uncertain
        batch.failure_reason = failure
        batch.judgement_count = report.judgements
        batch.answer_count = report.answers
        batch.dropped_count = report.dropped_count
        batch.dropped = report.dropped
        batch.stored_path = ""
        batch.finished_at = timezone.now()
        batch.save()
        audit_event_record(
            actor=batch.uploaded_by,
            action=f"import.{status}",
            target=batch,
            project=batch.project,
            payload={
                "lines": report.lines,
                "imported": report.imported,
                "bad_lines": report.bad,
                "duplicates": report.duplicates,
                "pii_rejected": report.pii_rejected,
                "pii_found": report.scrub_counts,
                "pii_uncertain": report.uncertain_count,
                "sha256": batch.sha256,
                "failure": failure,
                **(
                    {"judgements": report.judgements, "answers": report.answers, "dropped": report.dropped_count}
                    if batch.fmt in PEER_FORMATS
                    else {}
                ),
            },
        )
        if status == ImportStatus.DONE:
            followups.ended("import_batch", batch.pk)  # the higher floors' work on new items (embeddings)
    with contextlib.suppress(Exception):  # the cache is the broker's Redis: down, it must not fail the outcome
        cache.delete(f"import-progress:{batch.pk}")
    return batch
