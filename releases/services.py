"""Writes of the releases app: define, build (the pipeline is ``releases.build``, the files and the
artifact store ``releases.artifacts``), delete (tombstone), verify and export dataset releases; embed the
prompts of imported items (the model and the stored form are ``releases.embeddings``)."""

import logging
import shutil
import uuid
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, TextField
from django.db.models.functions import Cast, Length
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation.models import ImportBatch, Item, RubricVersion
from core import followups
from core.db import connection_lost, describe, lost_connection_reason, on_fresh_connection
from core.dispatch import send_on_commit
from core.errors import DomainError
from releases import artifacts, embeddings
from releases.build import BuildRefused, build
from releases.models import PromptEmbedding, Release, ReleaseFile, ReleaseItem, ReleaseState
from releases.recipe import Recipe

logger = logging.getLogger(__name__)

# Items embedded and stored a transaction: a worker that stops keeps what it stored before.
EMBED_CHUNK = 512


# --- Define ------------------------------------------------------------------------------------------------


def release_create(
    *, actor: User, project: Project, name: str, recipe: dict[str, Any], assumptions: str = ""
) -> Release:
    """Define a release (the next version of ``name``) and queue its build. Raises ``DomainError`` for a bad
    recipe, an unknown rubric version or mix-in batch."""
    name = name.strip()
    if not name:
        raise DomainError("Give the release a name.", field="name")
    checked = Recipe.from_dict(recipe)
    if checked.rubric_versions:
        known = set(RubricVersion.objects.filter(project=project).values_list("version", flat=True))
        missing = sorted(set(checked.rubric_versions) - known)
        if missing:
            raise DomainError(f"No rubric version {missing[0]} in this project.", field="rubric_versions")
    if checked.mixin_batches:
        known = set(ImportBatch.objects.filter(project=project, purpose="mixin").values_list("id", flat=True))
        missing = sorted(set(checked.mixin_batches) - known)
        if missing:
            raise DomainError(f"Import #{missing[0]} is not a mix-in import of this project.", field="mixin_batches")
    with transaction.atomic():
        # One version number per name, even when racing. NO KEY: a lock that rows naming the project (the audit
        # event this writes, and those of other transactions) can still reference; FOR UPDATE would deadlock
        # with an audit append that waits for this transaction while holding the chain lock this one needs.
        Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        latest = Release.objects.filter(project=project, name=name).aggregate(v=Max("version"))["v"] or 0
        release = Release.objects.create(
            project=project,
            kind=checked.kind,
            name=name[:100],
            version=latest + 1,
            recipe=checked.canonical(),
            assumptions=assumptions.strip(),
            created_by=actor,
        )
        audit_event_record(
            actor=actor,
            action="release.create",
            target=release,
            project=project,
            payload={"name": release.name, "version": release.version, "recipe": release.recipe},
        )
        from releases.tasks import release_build_task

        send_on_commit(
            lambda: release_build_task.delay(release.pk),
            what=f"build of release #{release.pk}",
            on_refused=lambda reason: _fail_unsent_build(release, reason),
        )
    release.refresh_from_db()  # queued, or failed because its build could not be sent
    return release


def release_rebuild(*, actor: User, release: Release) -> Release:
    """A new version of the release from the same recipe and assumptions (on unchanged data: the same hash)."""
    return release_create(
        actor=actor, project=release.project, name=release.name, recipe=release.recipe, assumptions=release.assumptions
    )


def _start(release_id: int) -> Release | None:
    """Mark the release building, unless another build of the project runs (then None: try later)."""
    with transaction.atomic():
        release = Release.objects.select_for_update(no_key=True).select_related("project").get(pk=release_id)
        if release.state not in (ReleaseState.QUEUED, ReleaseState.BUILDING):
            return release
        Project.objects.select_for_update(no_key=True).get(pk=release.project_id)  # as in release_create
        busy = Release.objects.filter(project_id=release.project_id, state=ReleaseState.BUILDING).exclude(pk=release.pk)
        if busy.exists():
            return None
        # A build that died half-way (worker lost) starts again from a clean slate.
        ReleaseItem.objects.filter(release=release).delete()
        release.state = ReleaseState.BUILDING
        release.progress = 0
        release.progress_note = "starting"
        release.save(update_fields=["state", "progress", "progress_note"])
    return release


def release_build(*, release_id: int) -> Release | None:
    """Build a queued release: select, split, check for leaks, aggregate, export, hash, store and freeze.
    Returns None when another build of the same project is running (the task retries later). A refused or
    crashed build leaves the release ``failed`` with the reason (and the leak report), and nothing of it
    in the artifact store. A lost database connection fails it in words, recorded on a fresh connection."""
    release = _start(release_id)
    if release is None or release.state != ReleaseState.BUILDING:
        return release
    scratch = Path(settings.DATA_DIR) / "tmp" / f"release-{release.pk}-{uuid.uuid4().hex[:8]}"
    try:
        return build(release, scratch)
    except BuildRefused as refused:
        _fail(release, refused.reason, refused.report)
    except Exception as exc:
        if not connection_lost(exc):
            logger.exception("Build of release #%s crashed", release.pk)
            _fail(release, f"The build crashed: {type(exc).__name__}: {exc}", {})
        else:
            logger.error("Build of release #%s: the database connection was lost: %s", release.pk, describe(exc))
            on_fresh_connection(lambda: _fail_unless_built(release), what=f"build of release #{release.pk}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    release.refresh_from_db()
    return release


def _fail_unless_built(release: Release) -> None:
    """After a lost connection: fail the build, unless its last commit reached the server before the loss."""
    if Release.objects.filter(pk=release.pk, state=ReleaseState.BUILT).exists():
        return
    _fail(release, lost_connection_reason("build"), {})


def _fail_unsent_build(release: Release, reason: str) -> None:
    """The build's task never reached the broker: fail the release with the reason rather than leave it queued."""
    with transaction.atomic():  # a worker that got the task after all takes this lock to start building
        if Release.objects.select_for_update().filter(pk=release.pk, state=ReleaseState.QUEUED).exists():
            _fail(release, reason, {})


def _fail(release: Release, reason: str, report: dict[str, Any]) -> None:
    ReleaseItem.objects.filter(release=release).delete()
    artifacts.delete_stored(release)
    with transaction.atomic():
        Release.objects.filter(pk=release.pk).update(
            state=ReleaseState.FAILED, failure_reason=reason, leak_report=report, progress_note="failed"
        )
        audit_event_record(
            actor=None,
            action="release.fail",
            object_type="releases.release",
            object_id=release.pk,
            project=release.project,
            payload={"reason": reason, "leaks": len(report.get("leaks", []))},
        )
        followups.ended("release", release.pk)


# --- Download ----------------------------------------------------------------------------------------------


def release_file_download(*, actor: User, found: ReleaseFile, via: str) -> None:
    """Audit that ``actor`` downloaded one file of a built release (``via`` "web" or "api"): who, which release
    and file, in which format, when. One event, appended alone (its own short transaction) before the bytes are
    sent; an answer "not modified" sends none and is not a download."""
    release = found.release
    audit_event_record(
        actor=actor,
        action="release.download",
        target=release,
        project=release.project,
        payload={
            "release": release.pk,
            "version": release.version,
            "file": found.path,
            "format": found.fmt,
            "sha256": found.sha256,
            "via": via,
        },
    )


# --- Delete and verify -------------------------------------------------------------------------------------


def release_delete(*, actor: User, release: Release, reason: str = "") -> Release:
    """Delete a release's files and leave a tombstone: the row keeps its hash, manifest and item rows (its
    evaluation items stay sticky). Admin only (checked by the caller's access helper). Raises
    ``DomainError`` while it builds, when it is already deleted, or without a reason (auditors ask why)."""
    reason = reason.strip()
    if len(reason) < 3:
        raise DomainError("Say why the release is deleted (the reason goes into the audit log).", field="reason")
    with transaction.atomic():
        release = Release.objects.select_for_update(no_key=True).select_related("project").get(pk=release.pk)
        if release.state == ReleaseState.DELETED:
            raise DomainError("This release is already deleted.", status=409)
        if release.state in (ReleaseState.QUEUED, ReleaseState.BUILDING):
            raise DomainError("Wait for the build to end before deleting the release.", status=409)
        Release.objects.filter(pk=release.pk).update(
            state=ReleaseState.DELETED, deleted_by=actor, deleted_at=timezone.now()
        )
        audit_event_record(
            actor=actor,
            action="release.delete",
            target=release,
            project=release.project,
            payload={"name": release.name, "version": release.version, "hash": release.hash, "reason": reason},
        )
        transaction.on_commit(lambda: artifacts.delete_stored(release))
    release.refresh_from_db()
    return release


def release_verify(*, release: Release) -> list[str]:
    """Re-hash every stored file and the manifest. Returns the problems found (empty: intact)."""
    if release.state != ReleaseState.BUILT:
        return [f"release #{release.pk} is {release.get_state_display().lower()}, not built"]
    return artifacts.stored_problems(release)


def export_to_directory(*, release: Release, target: Path, formats: Iterable[str] = ()) -> list[Path]:
    """Copy a built release's files (all, or those of ``formats``) from the artifact store to ``target``, and
    audit it as a download by the platform (the operator's command): which release, files and formats, where."""
    if release.state != ReleaseState.BUILT:
        raise DomainError(
            f"Release #{release.pk} is {release.get_state_display().lower()}; only built releases export."
        )
    written = artifacts.copy_out(release, target, set(formats))
    audit_event_record(
        actor=None,
        action="release.download",
        target=release,
        project=release.project,
        payload={
            "release": release.pk,
            "version": release.version,
            "files": len(written),
            "format": sorted(formats) or "all",
            "directory": str(target),
            "via": "command",
        },
    )
    return written


# --- Prompt embeddings -------------------------------------------------------------------------------------


def prompt_embeddings_compute(
    *, project_id: int, item_ids: Collection[int] | None = None, limit: int | None = None
) -> int:
    """Embed the prompts of the project's items (of ``item_ids`` among them, when given) that have no embedding
    by the current model (``EMBEDDING_MODEL_DIR``, by its content hash) of their current text, and return how
    many were embedded. Runs on a gpu worker (task ``releases.prompt_embeddings_compute``), never in a request.

    Items are embedded in batches and stored ``EMBED_CHUNK`` at a time, each chunk in its own transaction, so a
    worker that stops keeps what it stored. Idempotent and safe to run twice, also at once: an item already
    embedded is not embedded again, an item whose text changed while it was embedded is left for the next run,
    and two runs storing one item write the same row (one row an item: a new model or new text replaces it).
    ``limit`` embeds at most that many (the shortest first) and leaves the rest for the next run. Writes
    ``PromptEmbedding`` rows and, when it embedded any, one ``embeddings.compute`` audit event. Raises
    ``releases.embeddings.EmbeddingModelError`` when the model is missing or is not a mean-pooling sentence model.
    """
    model_hash = embeddings.embedding_model_hash()
    current = PromptEmbedding.objects.filter(
        item_id=OuterRef("pk"), model_hash=model_hash, content_hash=OuterRef("content_hash")
    )
    pending = Item.objects.filter(project_id=project_id).exclude(Exists(current))
    if item_ids is not None:
        pending = pending.filter(pk__in=list(item_ids))
    # Shortest conversations first, so each chunk's batches pad to like lengths, as one sort of all would.
    by_size = pending.annotate(size=Length(Cast("messages", output_field=TextField()))).order_by("size", "pk")
    found = by_size.values_list("pk", flat=True)
    ids = list(found[:limit] if limit is not None else found)
    if not ids:
        return 0
    model = embeddings.load_embedding_model()
    embedded = 0
    for start in range(0, len(ids), EMBED_CHUNK):
        rows = list(
            Item.objects.filter(pk__in=ids[start : start + EMBED_CHUNK]).values_list("pk", "content_hash", "messages")
        )
        vectors = model.embed([embeddings.embedding_text(messages) for _, _, messages in rows])
        codes, scales = embeddings.quantise(vectors)
        with transaction.atomic():
            # Only items that still hold the text embedded (an edit meanwhile leaves its item for the next run).
            unchanged = dict(Item.objects.filter(pk__in=[pk for pk, _, _ in rows]).values_list("pk", "content_hash"))
            now = timezone.now()
            stored = [
                PromptEmbedding(
                    item_id=pk,
                    model_hash=model.content_hash,
                    content_hash=digest,
                    dim=model.dim,
                    scale=float(scales[index]),
                    vector=codes[index].tobytes(),
                    created_at=now,
                )
                for index, (pk, digest, _) in enumerate(rows)
                if unchanged.get(pk) == digest
            ]
            PromptEmbedding.objects.bulk_create(
                stored, update_conflicts=True, unique_fields=["item"],
                update_fields=["model_hash", "content_hash", "dim", "scale", "vector", "created_at"],
            )  # fmt: skip
        embedded += len(stored)
    project = Project.objects.filter(pk=project_id).first()
    if embedded and project is not None:
        audit_event_record(
            actor=None,
            action="embeddings.compute",
            target=project,
            project=project,
            payload={"items": embedded, "model_hash": model.content_hash, "dim": model.dim},
        )
    return embedded
