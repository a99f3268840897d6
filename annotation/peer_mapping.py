"""The mapping step of another tool's file: the first read that lists its fields and annotators (kept on the
batch as ``peer_scan``), the data lead's mapping of both, checked against it, and the services that record it
and run the import (``import_mapping_confirm``), or drop the waiting file (``import_cancel``)."""

from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.selectors import project_members
from accounts.services import audit_event_record
from annotation import selectors
from annotation.import_report import ImportReport
from annotation.importing import finish_import, run_if_small, send_if_large
from annotation.models import ImportBatch, ImportedAnnotator, ImportStatus
from annotation.peer_import import NEW, SKIP
from annotation.peers.reading import peer_scan
from annotation.peers.records import FieldMap, PeerFormat, PeerScan
from core.errors import DomainError


def scan_file(project: Project, path: Path, fmt: str) -> dict[str, Any]:
    """Read the stored file once for the mapping step; return what the batch keeps of it (``peer_scan``),
    each annotator with the project member whose e-mail matches theirs, suggested (never applied unasked)."""
    scan: PeerScan = peer_scan(path, fmt)
    emails = {
        m.user.email.casefold(): m.user.pk
        for m in project_members(project).filter(user__is_active=True)
        if m.user.email and not hasattr(m.user, "imported_as")
    }
    known = dict(
        ImportedAnnotator.objects.filter(project=project, tool=fmt).values_list("key", "user_id")  # mapped before
    )
    return {
        "tool": scan.tool,
        "project": scan.project,
        "records": scan.records,
        "fields": scan.fields,
        "field_guess": _field_map_json(scan.field_guess),
        "annotators": [
            {
                "key": seen.annotator.key,
                "label": seen.annotator.label,
                "judgements": seen.judgements,
                "answers": seen.answers,
                "suggested_user": emails.get(seen.annotator.label.casefold()),
                "imported_before": known.get(seen.annotator.key),
            }
            for seen in scan.annotators
        ],
        "errors": [{"line": e.line, "reason": e.reason} for e in scan.errors],
    }


def _field_map_json(fields: FieldMap | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    raw = asdict(fields)
    raw["candidates"] = list(fields.candidates)
    return raw


def needs_fields(fmt: str) -> bool:
    """Only a Label Studio export leaves its fields' meaning unsaid (its labeling config is not exported)."""
    return fmt == PeerFormat.LABEL_STUDIO


def mapping_check(
    batch: ImportBatch, *, fields: dict[str, Any] | None, annotators: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Check a mapping against the batch's scan; return it normalised (fields, annotators). Every annotator
    the file names must be mapped: to a member of the project (by user id), to ``"new"`` or to ``"skip"``;
    no two to the same member. Raises ``DomainError`` naming what is wrong."""
    scan = batch.peer_scan or {}
    field_map = None
    if needs_fields(batch.fmt):
        field_map = _fields_check(fields or scan.get("field_guess") or {}, scan.get("fields") or [])
    seen = {a["key"]: a for a in scan.get("annotators", [])}
    unknown = sorted(set(annotators) - set(seen))
    if unknown:
        raise DomainError(f"The file names no annotator “{unknown[0]}”.", field="annotators")
    missing = [a["label"] for key, a in seen.items() if key not in annotators]
    if missing:
        raise DomainError(
            f"Say whom each annotator of the file is; not mapped: {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + ". Map each to a member of the project, to a new imported annotator, or leave them out.",
            field="annotators",
        )
    if any(a.get("answers") for a in seen.values()) and selectors.current_rubric(batch.project) is None:
        raise DomainError(
            "The file holds written answers, and every annotation here is made under the project's rubric: write "
            "the rubric first (Rubric page), then map the import.",
        )
    members = dict(project_members(batch.project).values_list("user_id", "user__username"))
    resolved: dict[str, Any] = {}
    taken: dict[int, str] = {}
    for key, value in annotators.items():
        choice = value.get("user") if isinstance(value, dict) else value
        if choice in (NEW, SKIP):
            resolved[key] = {choice: True}
            continue
        try:
            user_id = int(str(choice))
        except ValueError:
            raise DomainError(
                f"Map {seen[key]['label']} to a member's user id, “new” or “skip”, not “{choice}”.", field="annotators"
            ) from None
        if user_id not in members:
            raise DomainError(f"User #{user_id} is not a member of this project.", field="annotators")
        if user_id in taken:
            raise DomainError(
                f"{seen[taken[user_id]]['label']} and {seen[key]['label']} are both mapped to {members[user_id]}: "
                "each person judges an item once.",
                field="annotators",
            )
        taken[user_id] = key
        resolved[key] = {"user": user_id}
    return field_map, resolved


def _fields_check(raw: dict[str, Any], known: list[str]) -> dict[str, Any]:
    prompt = str(raw.get("prompt") or "").strip()
    if not prompt:
        raise DomainError("Name the field that holds the prompt.", field="fields")
    candidates = [str(c).strip() for c in raw.get("candidates") or [] if str(c).strip()]
    response = str(raw.get("response") or "").strip() or None
    named = [prompt, *candidates, *([response] if response else [])]
    if known:
        strange = [name for name in named if name not in known]
        if strange:
            raise DomainError(
                f"The file's tasks have no field “{strange[0]}” (they have: {', '.join(known[:20])}).", field="fields"
            )
    if len(set(named)) != len(named):
        raise DomainError("A field can hold one thing: the prompt, a candidate or the response.", field="fields")
    if len(candidates) == 1:
        raise DomainError("A comparison needs two candidate fields or more (or none, for answers).", field="fields")
    return {"prompt": prompt, "candidates": candidates, "response": response}


def mapping_complete(batch: ImportBatch, annotators: dict[str, Any] | None) -> bool:
    """Whether a mapping given with the upload covers every annotator the file names."""
    keys = {a["key"] for a in (batch.peer_scan or {}).get("annotators", [])}
    return not keys or (annotators is not None and keys <= set(annotators))


# --- the services ------------------------------------------------------------------------------------------------


def peer_start(
    actor: User, batch: ImportBatch, *, fields: dict[str, Any] | None, annotators: dict[str, Any] | None
) -> ImportBatch:
    """Read a peer tool's file for the mapping step; refuse it when it cannot be read at all; go on at once
    when the upload came with a mapping of every annotator."""
    scan = scan_file(batch.project, Path(batch.stored_path), batch.fmt)
    ImportBatch.objects.filter(pk=batch.pk).update(peer_scan=scan)
    batch.peer_scan = scan
    if scan["errors"]:
        report = ImportReport()
        for error in scan["errors"]:
            report.error(error["line"], error["reason"])
        return finish_import(batch, report, ImportStatus.REFUSED)
    if not mapping_complete(batch, annotators):
        return batch
    try:
        return import_mapping_confirm(actor=actor, batch=batch, fields=fields, annotators=annotators or {})
    except DomainError as exc:
        exc.message = f"{exc.message} Import #{batch.pk} keeps the file until it is mapped."
        raise


def import_mapping_confirm(
    *, actor: User, batch: ImportBatch, fields: dict[str, Any] | None, annotators: dict[str, Any]
) -> ImportBatch:
    """Record the data lead's mapping of a peer tool's file (which fields hold what; each annotator the file
    names mapped to a member, to a new imported annotator that cannot sign in, or left out) and import it:
    at once when small, on a worker when large. Raises ``DomainError`` when the import is not waiting for a
    mapping or the mapping is incomplete or wrong (``peer_import.mapping_check``); nothing changes then."""
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().select_related("project").get(pk=batch.pk)
        if batch.status != ImportStatus.MAPPING:
            raise DomainError(f"Import #{batch.pk} is not waiting for a mapping (it is {batch.get_status_display()}).")
        field_map, resolved = mapping_check(batch, fields=fields, annotators=annotators)
        batch.field_map = field_map
        batch.annotator_map = resolved
        batch.status = ImportStatus.QUEUED
        batch.save(update_fields=["field_map", "annotator_map", "status"])
        choices = [next(iter(value)) for value in resolved.values()]
        audit_event_record(
            actor=actor,
            action="import.mapped",
            target=batch,
            project=batch.project,
            payload={
                "fields": field_map,
                "to_members": choices.count("user"),
                "to_new_imported": choices.count(NEW),
                "left_out": choices.count(SKIP),
            },
        )
        send_if_large(batch)
    return run_if_small(batch)


def import_cancel(*, actor: User, batch: ImportBatch) -> ImportBatch:
    """Cancel an import still waiting for its mapping: its stored file is deleted, nothing is imported.
    Raises ``DomainError`` for an import past that step."""
    with transaction.atomic():
        locked = ImportBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.status != ImportStatus.MAPPING:
            raise DomainError(f"Import #{batch.pk} can no longer be cancelled (it is {locked.get_status_display()}).")
        Path(locked.stored_path).unlink(missing_ok=True)
        locked.status = ImportStatus.CANCELLED
        locked.stored_path = ""
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "stored_path", "finished_at"])
        audit_event_record(actor=actor, action="import.cancelled", target=locked, project=locked.project, payload={})
    return locked
