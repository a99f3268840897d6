"""The base-model registry: register a local model directory, check it on a gpu worker (what it holds, its
content hash), check it again after its files changed, fix its name or path (a new path is checked again) and
delete an entry no job uses. Every change is audited; a check that cannot be sent to a worker marks the model
invalid with the reason."""

import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_event_record
from core.dispatch import send_on_commit
from core.errors import DomainError
from training.models import ACTIVE_STATES, BaseModel, BaseModelState

logger = logging.getLogger(__name__)


def _checked_name(name: str, *, other_than: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise DomainError("Give the model a name.", field="name")
    if BaseModel.objects.filter(name=name).exclude(pk=other_than or 0).exists():
        raise DomainError(f"A base model is already called “{name}”.", field="name")
    return name[:100]


def _checked_directory(path: str) -> Path:
    directory = Path(path.strip())
    if not directory.is_absolute():
        raise DomainError("Give the absolute path of the model directory as the gpu workers see it.", field="path")
    roots = settings.TRAINING_MODEL_ROOTS
    if roots and not any(directory.resolve().is_relative_to(root) for root in roots):
        raise DomainError(f"Models live under {', '.join(map(str, roots))}.", field="path")
    return directory


def base_model_register(*, actor: User, name: str, path: str, description: str = "") -> BaseModel:
    """Register a local model directory and queue its validation on a gpu worker. Raises ``DomainError`` for
    a taken name, a relative path or one outside ``TRAINING_MODEL_ROOTS``."""
    directory = _checked_directory(path)
    name = _checked_name(name)
    with transaction.atomic():
        model = BaseModel.objects.create(
            name=name, path=str(directory), description=description.strip(), registered_by=actor
        )
        audit_event_record(
            actor=actor, action="training.base_model_register", target=model, payload={"name": name, "path": path}
        )
        _queue_check(model)
    model.refresh_from_db()  # validating, or invalid because its check could not be sent
    return model


def base_model_revalidate(*, actor: User, model: BaseModel) -> BaseModel:
    """Check the directory again (after files changed on the volume): the hash is recomputed."""
    with transaction.atomic():
        model.state = BaseModelState.VALIDATING
        model.failure_reason = ""
        model.save(update_fields=["state", "failure_reason"])
        audit_event_record(actor=actor, action="training.base_model_revalidate", target=model, payload={})
        _queue_check(model)
    model.refresh_from_db()  # validating, or invalid because its check could not be sent
    return model


def base_model_update(
    *, actor: User, model: BaseModel, name: str, path: str, description: str | None = None
) -> BaseModel:
    """Fix a model's name, path or description. A new path, or any change to a model that is not ready (one
    that failed its check), is checked again on a gpu worker. Raises ``DomainError`` for a taken name, a bad
    path (as at registration), or a new path while a queued or running job trains on the model."""
    directory = _checked_directory(path)
    name = _checked_name(name, other_than=model.pk)
    with transaction.atomic():
        model = BaseModel.objects.select_for_update().get(pk=model.pk)
        new = {"name": name, "path": str(directory)}
        if description is not None:
            new["description"] = description.strip()
        changes = {key: [getattr(model, key), value] for key, value in new.items() if getattr(model, key) != value}
        if not changes:
            return model
        if "path" in changes and model.jobs.filter(state__in=ACTIVE_STATES).exists():
            raise DomainError(
                f"A queued or running job trains on {model}: wait for it or cancel it before moving the model.",
                field="path",
                status=409,
            )
        check = "path" in changes or model.state != BaseModelState.READY
        for key, (_, value) in changes.items():
            setattr(model, key, value)
        fields = list(changes)
        if check:
            model.state, model.failure_reason = BaseModelState.VALIDATING, ""
            fields += ["state", "failure_reason"]
        model.save(update_fields=fields)
        audit_event_record(
            actor=actor, action="training.base_model_update", target=model, payload={"changes": changes, "check": check}
        )
        if check:
            _queue_check(model)
    model.refresh_from_db()  # validating, or invalid because its check could not be sent
    return model


def base_model_delete(*, actor: User, model: BaseModel) -> None:
    """Remove a registry entry (the directory on disk is left alone). Raises ``DomainError`` (409) while any
    job, of any state, was defined on the model: its lineage names it."""
    with transaction.atomic():
        model = BaseModel.objects.select_for_update().get(pk=model.pk)
        used = model.jobs.count()
        if used:
            raise DomainError(
                f"{model} cannot be deleted: {used} training job{'s' if used != 1 else ''} used it, and their "
                "lineage names it. Fix its path instead, or leave it.",
                status=409,
            )
        audit_event_record(
            actor=actor,
            action="training.base_model_delete",
            target=model,
            payload={"name": model.name, "path": model.path, "state": model.state, "content_hash": model.content_hash},
        )
        model.delete()


def base_model_validate(*, model_id: int) -> BaseModel | None:
    """On a gpu worker: inspect the directory and record what it holds, or why it cannot be used. None when
    the model was deleted meanwhile."""
    from training.inspection import ModelDirectoryError, inspect_model_directory

    model = BaseModel.objects.filter(pk=model_id).first()
    if model is None:
        return None
    try:
        facts = inspect_model_directory(Path(model.path))
    except ModelDirectoryError as exc:
        changes: dict[str, Any] = {"state": BaseModelState.INVALID, "failure_reason": str(exc)}
    except Exception as exc:  # an unreadable file, a malformed header: say so rather than validate forever
        logger.exception("base model %s could not be checked", model_id)
        changes = {"state": BaseModelState.INVALID, "failure_reason": f"The check failed: {type(exc).__name__}: {exc}"}
    else:
        changes = {
            "state": BaseModelState.READY,
            "failure_reason": "",
            "architecture": facts.architecture,
            "model_type": facts.model_type,
            "parameter_count": facts.parameter_count,
            "dtype": facts.dtype,
            "linear_modules": facts.linear_modules,
            "content_hash": facts.content_hash,
            "files": facts.files,
        }
    with transaction.atomic():
        changes["validated_at"] = timezone.now()
        if not BaseModel.objects.filter(pk=model_id).update(**changes):
            return None  # deleted while its files were read
        model.refresh_from_db()
        audit_event_record(
            actor=None,
            action="training.base_model_validate",
            target=model,
            payload={
                "state": model.state,
                "reason": model.failure_reason,
                "content_hash": model.content_hash,
                "parameters": model.parameter_count,
            },
        )
    return model


def _queue_check(model: BaseModel) -> None:
    """Send the model's check to a gpu worker once the transaction commits."""
    from training.tasks import base_model_validate_task

    send_on_commit(
        lambda: base_model_validate_task.delay(model.pk),
        what=f"check of base model #{model.pk}",
        on_refused=lambda reason: _invalidate_unchecked_model(model.pk, reason),
    )


def _invalidate_unchecked_model(model_id: int, reason: str) -> None:
    """The model's check never reached the broker: say so rather than show it "validating" forever."""
    with transaction.atomic():
        model = BaseModel.objects.select_for_update().filter(pk=model_id).first()
        if model is None or model.state != BaseModelState.VALIDATING:
            return
        model.state, model.failure_reason = BaseModelState.INVALID, reason
        model.save(update_fields=["state", "failure_reason"])
        audit_event_record(
            actor=None,
            action="training.base_model_validate",
            target=model,
            payload={"state": model.state, "reason": reason, "content_hash": model.content_hash, "parameters": None},
        )
