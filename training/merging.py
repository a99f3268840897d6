"""The use cases of a merged model: asking for one, and its life on the gpu worker (begin, finish, orphans).
``training.merge_runner`` does the work; every state change here is audited."""

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_event_record
from core.dispatch import send_on_commit
from core.errors import DomainError
from training.models import Adapter, BaseModelState, MergedModel, MergedState


def merged_model_request(*, actor: User, adapter: Adapter) -> MergedModel:
    """Queue the merge of ``adapter`` into its base model on the gpu queue and return its ``MergedModel``.
    Idempotent: one queued, merging or ready answers as it is; a failed one is queued again. Raises
    ``DomainError`` when the base model is not ready or no longer has the hash the adapter was trained on."""
    from training.tasks import merged_model_build_task

    base = adapter.base_model
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        merged = MergedModel.objects.select_for_update().filter(adapter=adapter).first()
        if merged is not None and _silent(merged):
            merged = merged_model_finish(merged_id=merged.pk, reason=f"The gpu worker {merged.worker} was lost.")
        if merged is not None and merged.state != MergedState.FAILED:
            return merged
        if base.state != BaseModelState.READY or base.content_hash != adapter.base_model_hash:
            raise DomainError(
                f"The base model {base} changed after {adapter.name} was trained on it "
                f"({base.get_state_display().lower()}, hash {base.content_hash[:12]}…); it cannot be merged.",
                status=409,
            )
        values: dict[str, Any] = {
            "state": MergedState.QUEUED, "failure_reason": "", "storage_prefix": "", "files": [], "sha256": "",
            "size_bytes": 0, "adapter_sha256": adapter.sha256, "base_model_hash": adapter.base_model_hash,
            "worker": "", "requested_by": actor, "requested_at": timezone.now(), "started_at": None,
            "finished_at": None,
        }  # fmt: skip
        if merged is None:
            merged = MergedModel.objects.create(adapter=adapter, **values)
        else:
            for name, value in values.items():
                setattr(merged, name, value)
            merged.save()
        audit_event_record(
            actor=actor,
            action="training.merged_model_request",
            target=merged,
            project=adapter.project,
            payload={"adapter": adapter.pk, "adapter_sha256": adapter.sha256, "base_model_hash": base.content_hash},
        )
        merged_id = merged.pk
        send_on_commit(
            lambda: merged_model_build_task.apply_async(args=(merged_id,), task_id=task_id),
            what=f"merge of adapter #{adapter.pk}",
            on_refused=lambda reason: _fail_unsent(merged_id, reason),
        )
    merged.refresh_from_db()
    return merged


def _silent(merged: MergedModel) -> bool:
    """A merge whose worker stopped beating (killed, or its machine gone) is lost: it may be asked for again."""
    if merged.state != MergedState.RUNNING:
        return False
    last = merged.heartbeat_at or merged.started_at or merged.requested_at
    return timezone.now() - last > timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)


def merged_model_beat(*, merged_id: int) -> None:
    """The worker is alive and still merging."""
    MergedModel.objects.filter(pk=merged_id, state=MergedState.RUNNING).update(heartbeat_at=timezone.now())


def _fail_unsent(merged_id: int, reason: str) -> None:
    """The merge's task never reached the broker: fail it with the reason rather than leave it queued."""
    merged_model_finish(merged_id=merged_id, reason=reason)


def merged_model_begin(*, merged_id: int, worker: str) -> MergedModel | None:
    """On the worker: a queued merge starts; ``None`` when it is not queued (already taken or ended)."""
    with transaction.atomic():
        merged = MergedModel.objects.select_for_update().filter(pk=merged_id).first()
        if merged is None or merged.state != MergedState.QUEUED:
            return None
        merged.state, merged.worker, merged.started_at = MergedState.RUNNING, worker, timezone.now()
        merged.heartbeat_at = merged.started_at
        merged.save(update_fields=["state", "worker", "started_at", "heartbeat_at"])
    return MergedModel.objects.select_related("adapter__project", "adapter__base_model").get(pk=merged_id)


def merged_model_finish(
    *,
    merged_id: int,
    reason: str = "",
    storage_prefix: str = "",
    files: list[dict[str, Any]] | None = None,
    library_versions: dict[str, str] | None = None,
) -> MergedModel:
    """The merge ended: ready with its stored files when ``reason`` is empty, else failed with the reason.
    Records the outcome in the audit log (its files' hashes when ready)."""
    with transaction.atomic():
        merged = MergedModel.objects.select_for_update().select_related("adapter__project").get(pk=merged_id)
        if merged.state not in (MergedState.QUEUED, MergedState.RUNNING):
            return merged
        merged.finished_at = timezone.now()
        if reason:
            merged.state, merged.failure_reason = MergedState.FAILED, reason
        else:
            weights = next(entry for entry in files or [] if entry["path"] == "model.safetensors")
            merged.state, merged.storage_prefix, merged.files = MergedState.READY, storage_prefix, files or []
            merged.sha256, merged.size_bytes = weights["sha256"], sum(e["size_bytes"] for e in files or [])
            merged.library_versions = library_versions or {}
        merged.save()
        audit_event_record(
            actor=None,
            action="training.merged_model_ready" if not reason else "training.merged_model_fail",
            target=merged,
            project=merged.adapter.project,
            payload={"adapter": merged.adapter_id, "reason": reason, "sha256": merged.sha256, "files": merged.files,
                     "worker": merged.worker},
        )  # fmt: skip
    return merged


def merged_models_fail_orphans(*, worker: str) -> list[int]:
    """When a gpu worker starts: the merges it was running died with it; fail them so they can be asked again."""
    ids = list(MergedModel.objects.filter(worker=worker, state=MergedState.RUNNING).values_list("pk", flat=True))
    for merged_id in ids:
        merged_model_finish(merged_id=merged_id, reason=f"The gpu worker {worker} stopped while it merged.")
    return ids
