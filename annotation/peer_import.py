"""A peer tool's file through the import pipeline, once the data lead mapped it (``annotation.peer_mapping``):
the records it becomes: items, their imported judgements (written by ``preferences``, a higher floor, through
the writer it registers) and their imported answers (annotations), each keeping its origin: tool, project,
annotator, time."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.contrib.auth.hashers import make_password

from accounts.models import User
from annotation import selectors
from annotation.import_report import ImportReport
from annotation.models import (
    Annotation,
    AnnotationSettings,
    AnnotationState,
    ImportBatch,
    ImportedAnnotator,
    Item,
    PiiMode,
    Slot,
    SlotState,
)
from annotation.parsing import LineError, Message, content_hash
from annotation.peers.reading import peer_read
from annotation.peers.records import TOOL_NAMES, FieldMap, PeerFormat, PeerRecord
from annotation.pii import Scrubber

PEER_FORMATS = selectors.PEER_FORMATS
NEW = "new"  # map a tool's annotator to a new imported annotator (an account that cannot sign in)
SKIP = "skip"  # leave that annotator's judgements and answers out
_CHUNK = 500
# What each tool calls the record a dropped part belongs to: a compact JSON export is one line, so its line
# number alone does not find it.
_NOUNS = {"label_studio_json": "task", "argilla_disk": "record", "openassistant_trees": "replies to message"}


@dataclass(frozen=True)
class ImportedJudgement:
    """What ``preferences`` writes for one imported judgement: on ``item``, by ``annotator``, ``result`` in
    candidate ids, with its time and origin."""

    item: Item
    annotator: User
    result: dict[str, Any]
    rationale: str
    time_spent_ms: int
    origin: dict[str, Any]


JudgementWriter = Callable[[ImportBatch, list[ImportedJudgement]], None]
_writers: list[JudgementWriter] = []


def judgement_writer_register(writer: JudgementWriter) -> None:
    """``preferences`` registers what stores imported judgements when its app is ready."""
    if writer not in _writers:
        _writers.append(writer)


# --- the import --------------------------------------------------------------------------------------------------


def _authors(batch: ImportBatch) -> dict[str, User | None]:
    """The tool's annotator keys to their authors: the mapped member, an imported annotator (made now, within
    the import's transaction, when new), or None (left out)."""
    mapping = batch.annotator_map or {}
    users = {u.pk: u for u in User.objects.filter(pk__in=[v["user"] for v in mapping.values() if "user" in v])}
    authors: dict[str, User | None] = {}
    for key, value in mapping.items():
        if "user" in value:
            authors[key] = users.get(value["user"])
        elif NEW in value:
            authors[key] = _imported_annotator(batch, key)
        else:
            authors[key] = None
    return authors


def _imported_annotator(batch: ImportBatch, key: str) -> User:
    existing = (
        ImportedAnnotator.objects.filter(project=batch.project, tool=batch.fmt, key=key).select_related("user").first()
    )
    if existing is not None:
        return existing.user
    digest = hashlib.sha256(f"{batch.project_id}:{batch.fmt}:{key}".encode()).hexdigest()[:10]
    prefix = {"label_studio_json": "labelstudio", "argilla_disk": "argilla", "openassistant_trees": "oasst"}[batch.fmt]
    user = User.objects.create(
        username=f"{prefix}-{digest}",
        first_name=f"Imported from {TOOL_NAMES[PeerFormat(batch.fmt)]}",
        is_active=False,
        password=make_password(None),  # unusable: this account never signs in
    )
    ImportedAnnotator.objects.create(project=batch.project, tool=batch.fmt, key=key, user=user, first_batch=batch)
    return user


@dataclass
class _Pending:
    line: int
    item: Item
    judgements: list[tuple[User, dict[str, Any], str, int, dict[str, Any]]]
    answers: list[tuple[User, str, int, dict[str, Any]]]


def import_peer_stream(
    batch: ImportBatch,
    report: ImportReport,
    config: AnnotationSettings,
    scrubber: Scrubber,
    stream: IO[bytes],
    progress: Callable[[int], None],
) -> None:
    """Import a peer tool's stored file (``stream`` is open on it, for progress): every record scrubbed,
    de-duplicated and inserted with its judgements and answers; what cannot be mapped is reported as dropped,
    malformed records as bad lines."""
    if not _writers:
        raise RuntimeError("no writer of imported judgements is registered (is the preferences app installed?)")
    fields = None
    if batch.field_map:
        fields = FieldMap(**{**batch.field_map, "candidates": tuple(batch.field_map["candidates"])})
    authors = _authors(batch)
    # Read once, where the settings selector looks first: the adjudication check of each imported item asks for it.
    batch.project._state.fields_cache["annotation"] = config
    kinds = selectors.work_kinds(batch.project)
    scan = batch.peer_scan or {}
    labels = {a["key"]: a["label"] for a in scan.get("annotators", [])}
    origin = {"tool": scan.get("tool", batch.fmt), "project": scan.get("project", ""), "batch": batch.pk}
    seen_in_file: dict[str, int] = {}
    pending: list[_Pending] = []
    for entry in peer_read(Path(batch.stored_path), batch.fmt, fields=fields):
        report.lines = max(report.lines, entry.line)
        if isinstance(entry, LineError):
            report.error(entry.line, entry.reason)
            continue
        if not isinstance(entry, PeerRecord):
            report.drop(entry.line, entry.reason)
            continue
        for reason in entry.dropped:
            report.drop(entry.line, _where(batch, entry) + reason)
        kind = "comparison" if entry.candidates else "sft"
        if kind not in kinds:
            what = "a comparison" if kind == "comparison" else "a conversation to annotate"
            other = "conversations to annotate (SFT)" if kind == "comparison" else "comparisons"
            report.error(entry.line, f"this record is {what}; the project holds {other}")
            continue
        row = _record_row(batch, entry, report, config, scrubber, authors, labels, origin)
        if row is None:
            continue
        digest = row.item.content_hash
        report.content_digest.update(f"{entry.line}\t{digest}\n".encode())
        if digest in seen_in_file:
            report.skip(entry.line, f"same conversation as line {seen_in_file[digest]}")
            continue
        seen_in_file[digest] = entry.line
        pending.append(row)
        if len(pending) >= _CHUNK:
            _insert(batch, pending, report, config.annotators_per_item)
            pending = []
            progress(stream.tell())
    if pending:
        _insert(batch, pending, report, config.annotators_per_item)


def _record_row(
    batch: ImportBatch,
    entry: PeerRecord,
    report: ImportReport,
    config: AnnotationSettings,
    scrubber: Scrubber,
    authors: dict[str, User | None],
    labels: dict[str, str],
    origin: dict[str, Any],
) -> _Pending | None:
    """Scrub one record's texts (one scrub, so placeholders agree across them) into an unsaved item with its
    judgements and answers by their mapped authors; None when the project's PII policy rejects it."""
    texts = [m.content for m in entry.messages] + ([entry.response] if entry.response is not None else [])
    texts += [c.content for c in entry.candidates]
    texts += [a.response for a in entry.answers] + [j.rationale for j in entry.judgements]
    result = scrubber.scrub(texts)
    for kind, count in result.counts.items():
        report.scrub_counts[kind] = report.scrub_counts.get(kind, 0) + count
    for finding in result.uncertain:
        report.uncertain_value(entry.line, finding)
    if result.found and config.pii_mode == PiiMode.REJECT:
        found = ", ".join(f"{k}×{n}" for k, n in sorted(result.counts.items()))
        report.skip(entry.line, f"contains PII ({found}); the project's policy rejects such items", pii=True)
        return None
    scrubbed = iter(result.texts)
    messages = [Message(role=m.role, content=next(scrubbed)) for m in entry.messages]
    response = next(scrubbed) if entry.response is not None else None
    candidates = [next(scrubbed) for _ in entry.candidates]
    answer_texts = [next(scrubbed) for _ in entry.answers]
    rationales = [next(scrubbed) for _ in entry.judgements]
    item = Item(
        project=batch.project,
        batch=batch,
        kind="comparison" if candidates else "sft",
        external_id=entry.external_id or "",
        messages=[{"role": m.role, "content": m.content} for m in messages],
        response=response,
        candidates=[
            {"content": text, "provenance": candidate.provenance()}
            for text, candidate in zip(candidates, entry.candidates, strict=True)
        ],
        metadata=entry.metadata,
        content_hash=content_hash(messages, response, candidates),
    )
    row = _Pending(entry.line, item, [], [])
    by_author: set[int] = set()
    for judgement, rationale in zip(entry.judgements, rationales, strict=True):
        author = _author(entry.line, _where(batch, entry), judgement.annotator.key, authors, labels, by_author, report)
        if author is not None:
            made = _origin(origin, judgement.annotator.key, judgement.external_id, judgement.created_at)
            row.judgements.append((author, judgement.result, rationale, judgement.lead_time_ms or 0, made))
    for answer, text in zip(entry.answers, answer_texts, strict=True):
        author = _author(entry.line, _where(batch, entry), answer.annotator.key, authors, labels, by_author, report)
        if author is not None:
            made = _origin(origin, answer.annotator.key, answer.external_id, answer.created_at)
            row.answers.append((author, text, answer.lead_time_ms or 0, made))
    return row


def _where(batch: ImportBatch, entry: PeerRecord) -> str:
    """How a dropped part's reason starts: the record it belongs to, as its tool names it ("task 303: ")."""
    return f"{_NOUNS[batch.fmt]} {entry.external_id}: " if entry.external_id else ""


def _author(
    line: int,
    where: str,
    key: str,
    authors: dict[str, User | None],
    labels: dict[str, str],
    done: set[int],
    report: ImportReport,
) -> User | None:
    author = authors.get(key)
    if author is None:
        report.drop(line, f"{where}{labels.get(key, key)}'s annotation left out, as mapped")
        return None
    if author.pk in done:
        report.drop(
            line, f"{where}a second annotation by {labels.get(key, key)} left out: each person judges an item once"
        )
        return None
    done.add(author.pk)
    return author


def _origin(base: dict[str, Any], key: str, external_id: str, at: Any) -> dict[str, Any]:
    return {**base, "annotator": key, "id": external_id, "at": at.isoformat() if at is not None else None}


def _insert(batch: ImportBatch, pending: list[_Pending], report: ImportReport, k: int) -> None:
    """Insert a chunk: items new to the project, a slot per annotator wanted (done for those whose judgement
    or answer came with the file, free for the rest), then the judgements and answers."""
    existing = dict(
        Item.objects.filter(project=batch.project, content_hash__in=[p.item.content_hash for p in pending]).values_list(
            "content_hash", "id"
        )
    )
    fresh = []
    for row in pending:
        if row.item.content_hash in existing:
            kept = len(row.judgements) + len(row.answers)
            also = f"; its {kept} annotation{'s' if kept != 1 else ''} not imported" if kept else ""
            report.skip(row.line, f"already in the project as item #{existing[row.item.content_hash]}{also}")
        else:
            fresh.append(row)
    if report.bad and not batch.skip_bad_lines:
        return  # the batch will be refused: keep reading only to report every bad line
    Item.objects.bulk_create([row.item for row in fresh], batch_size=_CHUNK)
    slots = []
    for row in fresh:
        done = [author for author, *_ in row.judgements] + [author for author, *_ in row.answers]
        slots += [
            Slot(item=row.item, project=batch.project, index=i, state=SlotState.DONE, user=author)
            for i, author in enumerate(done)
        ]
        slots += [Slot(item=row.item, project=batch.project, index=i) for i in range(len(done), k)]
    Slot.objects.bulk_create(slots, batch_size=_CHUNK)
    judgements = [
        ImportedJudgement(row.item, author, result, rationale, ms, origin)
        for row in fresh
        for author, result, rationale, ms, origin in row.judgements
    ]
    for writer in _writers:
        writer(batch, judgements)
    rubric = selectors.current_rubric(batch.project)
    answers = [(row.item, *answer) for row in fresh for answer in row.answers]
    assert rubric is not None or not answers, "mapping_check refuses answers before the project has a rubric"
    Annotation.objects.bulk_create(
        [
            Annotation(
                item=item,
                annotator=author,
                rubric_version=rubric,
                original_response=item.response,
                response=text,
                time_spent_ms=ms,
                state=AnnotationState.SUBMITTED,  # a reviewer here approves or sends it back: four eyes still hold
                submit_key=hashlib.sha256(f"import:{batch.pk}:{item.content_hash}:{author.pk}".encode()).hexdigest(),
                origin=origin,
            )
            for item, author, text, ms, origin in answers
        ],
        batch_size=_CHUNK,
    )
    report.imported += len(fresh)
    report.judgements += len(judgements)
    report.answers += len(answers)
