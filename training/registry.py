"""The base-model registry: register a local model directory, check it on a gpu worker (what it holds, its
content hash) and check it again after its files changed. Every change is audited; a check that cannot be
sent to a worker marks the model invalid with the reason."""

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
from training.models import BaseModel, BaseModelState

logger = logging.getLogger(__name__)


def base_model_register(*, actor: User, name: str, path: str, description: str = "") -> BaseModel:
    """Register a local model directory and queue its validation on a gpu worker. Raises ``DomainError`` for
    a taken name, a relative path or one outside ``TRAINING_MODEL_ROOTS``."""
    name = name.strip()
    if not name:
        raise DomainError("Give the model a name.", field="name")
    directory = Path(path.strip())
    if not directory.is_absolute():
        raise DomainError("Give the absolute path of the model directory as the gpu workers see it.", field="path")
    roots = settings.TRAINING_MODEL_ROOTS
    if roots and not any(directory.resolve().is_relative_to(root) for root in roots):
        raise DomainError(f"Models live under {', '.join(map(str, roots))}.", field="path")
    if BaseModel.objects.filter(name=name).exists():
        raise DomainError(f"A base model is already called “{name}”.", field="name")
    with transaction.atomic():
        model = BaseModel.objects.create(
            name=name[:100], path=str(directory), description=description.strip(), registered_by=actor
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


def base_model_validate(*, model_id: int) -> BaseModel:
    """On a gpu worker: inspect the directory and record what it holds, or why it cannot be used."""
    from training.inspection import ModelDirectoryError, inspect_model_directory

    model = BaseModel.objects.get(pk=model_id)
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
        BaseModel.objects.filter(pk=model_id).update(**changes)
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
        model = BaseModel.objects.select_for_update().get(pk=model_id)
        if model.state != BaseModelState.VALIDATING:
            return
        model.state, model.failure_reason = BaseModelState.INVALID, reason
        model.save(update_fields=["state", "failure_reason"])
        audit_event_record(
            actor=None,
            action="training.base_model_validate",
            target=model,
            payload={"state": model.state, "reason": reason, "content_hash": model.content_hash, "parameters": None},
        )
