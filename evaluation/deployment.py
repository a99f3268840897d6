"""Deployment targets, the promotion gate, four-eyes promotion and rollback.

A target names what a serving stack inside the perimeter pulls (``current_adapter``; None: the base model
alone). A promotion request carries the gate as it was checked: the adapter's evaluation finished, its human
win rate's lower bound against the target's current model reaches the target's threshold, and its held-out
figures are not worse than the current model's by more than the target's margin. It is carried out when
``approvals_required`` people who hold the approve permission approved it, none of them the requester or the
person who started the adapter's training job. A rollback to an earlier model of the target needs a reason and
one such approval. The target's row is locked (``FOR NO KEY UPDATE``) by every write, so two approvals arriving
together can never promote twice. Every request, approval, refusal, withdrawal, promotion and rollback is
audited; a refused call raises ``DomainError`` and writes nothing."""

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Project, ProjectPerm, User
from accounts.permissions import user_has_project_perm
from accounts.services import audit_event_record
from core import followups
from core.errors import DomainError
from core.marks import marks_of
from evaluation.gate import gate_check
from evaluation.models import (
    Deployment,
    DeploymentTarget,
    Evaluation,
    PromotionApproval,
    PromotionRequest,
    RequestKind,
    RequestState,
)
from training.models import Adapter, BaseModel, BaseModelState

APPROVALS_FOR_ROLLBACK = 1
RESERVED_NAMES = frozenset({"new"})  # the address of the new-target page
TARGET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")


def _check_thresholds(min_win_rate_lower: float, max_metric_regression: float) -> None:
    if not 0.0 <= min_win_rate_lower <= 1.0:
        raise DomainError("The win-rate threshold is a fraction from 0 to 1.", field="min_win_rate_lower")
    if not 0.0 <= max_metric_regression <= 1.0:
        raise DomainError(
            "The allowed held-out regression is a fraction from 0 to 1 (0.02 is 2%).", field="max_metric_regression"
        )


def deployment_target_create(
    *,
    actor: User,
    project: Project,
    name: str,
    base_model: BaseModel,
    current_adapter: Adapter | None = None,
    description: str = "",
    min_win_rate_lower: float = 0.5,
    max_metric_regression: float = 0.02,
) -> DeploymentTarget:
    """A target serving ``current_adapter`` (None: the base model alone), with its first history row ("created").
    Raises ``DomainError`` for a name that is not a lowercase slug or already taken (409), a base model that is
    not ready, an adapter of another project or base model, thresholds outside 0..1."""
    name = name.strip()
    if not TARGET_NAME.match(name) or name in RESERVED_NAMES:
        raise DomainError(
            "Name the target with lowercase letters, digits and hyphens (retail-banking-assistant), other than “new”.",
            field="name",
        )
    if base_model.state != BaseModelState.READY:
        raise DomainError(f"The base model {base_model} is not ready.", field="base_model")
    if current_adapter is not None:
        if current_adapter.project_id != project.pk:
            raise DomainError("That adapter belongs to another project.", field="current_adapter")
        if current_adapter.base_model_id != base_model.pk:
            raise DomainError(
                f"{current_adapter} was trained on {current_adapter.base_model}, not {base_model}.",
                field="current_adapter",
            )
    _check_thresholds(min_win_rate_lower, max_metric_regression)
    if DeploymentTarget.objects.filter(project=project, name=name).exists():
        raise DomainError(f"This project already has a deployment target named {name}.", field="name", status=409)
    with transaction.atomic():
        try:
            with transaction.atomic():
                target = DeploymentTarget.objects.create(
                    project=project,
                    name=name,
                    description=description.strip(),
                    base_model=base_model,
                    current_adapter=current_adapter,
                    min_win_rate_lower=min_win_rate_lower,
                    max_metric_regression=max_metric_regression,
                    created_by=actor,
                )
        except IntegrityError:
            raise DomainError(
                f"This project already has a deployment target named {name}.", field="name", status=409
            ) from None
        Deployment.objects.create(target=target, kind="created", adapter=current_adapter, created_at=target.created_at)
        audit_event_record(
            actor=actor,
            action="deployment.target_create",
            target=target,
            project=project,
            payload={
                "name": name,
                "base_model": base_model.pk,
                "base_model_hash": base_model.content_hash,
                "adapter": current_adapter.pk if current_adapter else None,
                "adapter_sha256": current_adapter.sha256 if current_adapter else None,
                "min_win_rate_lower": min_win_rate_lower,
                "max_metric_regression": max_metric_regression,
            },
        )
    return target


def deployment_target_update(
    *,
    actor: User,
    target: DeploymentTarget,
    description: str | None = None,
    min_win_rate_lower: float | None = None,
    max_metric_regression: float | None = None,
) -> DeploymentTarget:
    """Change a target's description or thresholds (None: unchanged). A pending request keeps the gate it was
    checked with. Raises ``DomainError`` for thresholds outside 0..1."""
    values: dict[str, Any] = {
        "description": target.description if description is None else description.strip(),
        "min_win_rate_lower": target.min_win_rate_lower if min_win_rate_lower is None else min_win_rate_lower,
        "max_metric_regression": target.max_metric_regression
        if max_metric_regression is None
        else max_metric_regression,
    }
    _check_thresholds(values["min_win_rate_lower"], values["max_metric_regression"])
    with transaction.atomic():
        target = _lock(target)
        changes = {key: [getattr(target, key), value] for key, value in values.items() if getattr(target, key) != value}
        if not changes:
            return target
        for key, value in values.items():
            setattr(target, key, value)
        target.updated_at = timezone.now()
        target.save(update_fields=[*values, "updated_at"])
        audit_event_record(
            actor=actor, action="deployment.target_update", target=target, project=target.project,
            payload={"name": target.name, "changes": changes},
        )  # fmt: skip
    return target


def _lock(target: DeploymentTarget) -> DeploymentTarget:
    """The target's row, locked until the transaction ends (NO KEY: the audit events and history rows this
    transaction writes may still reference it)."""
    return (
        DeploymentTarget.objects.select_for_update(no_key=True, of=("self",))
        .select_related("project", "base_model", "current_adapter")
        .get(pk=target.pk)
    )


# --- Requests ----------------------------------------------------------------------------------------------


def _refuse_if_pending(target: DeploymentTarget) -> None:
    pending = PromotionRequest.objects.filter(target=target, state=RequestState.PENDING).first()
    if pending is not None:
        raise DomainError(
            f"{target} already has a pending {pending.get_kind_display().lower()} request (#{pending.pk}); it must "
            "be carried out, refused or withdrawn before another is made.",
            status=409,
        )


def _open(target: DeploymentTarget, **values: Any) -> PromotionRequest:
    try:
        with transaction.atomic():
            return PromotionRequest.objects.create(target=target, replaces_adapter=target.current_adapter, **values)
    except IntegrityError:  # the partial unique index: another request was made meanwhile
        raise DomainError(f"{target} already has a pending request.", status=409) from None


def promotion_request(
    *, actor: User, target: DeploymentTarget, adapter: Adapter, evaluation: Evaluation | None
) -> PromotionRequest:
    """Ask to make ``adapter`` the target's current model. The gate is checked now and stored on the request.
    Raises ``DomainError`` naming every failed check, for an adapter of another project or already current,
    and when the target has a pending request (409)."""
    if adapter.project_id != target.project_id:
        raise DomainError("That adapter belongs to another project.", field="adapter")
    tainted = marks_of("adapter", adapter.pk).get("tainted")
    if tainted:
        erasures = ", ".join(f"#{pk}" for pk in tainted["erasures"])
        raise DomainError(
            f"{adapter} was trained on text that erasure {erasures} removed; train a new adapter on the rebuilt "
            "release and promote that one.",
            field="adapter",
            status=409,
        )
    with transaction.atomic():
        target = _lock(target)
        if target.current_adapter_id == adapter.pk:
            raise DomainError(f"{adapter} is already the current model of {target}.", field="adapter", status=409)
        _refuse_if_pending(target)
        gate = gate_check(target=target, adapter=adapter, evaluation=evaluation)
        if not gate["passed"]:
            failed = [check["detail"] for check in gate["checks"] if not check["passed"]]
            raise DomainError("The promotion gate refuses it: " + " ".join(failed), field="evaluation")
        request = _open(
            target, kind=RequestKind.PROMOTION, adapter=adapter, evaluation=evaluation, gate=gate, requested_by=actor
        )
        audit_event_record(
            actor=actor, action="deployment.promotion_request", target=request, project=target.project,
            payload={
                "target": target.name, "adapter": adapter.pk, "adapter_sha256": adapter.sha256,
                "evaluation": evaluation.pk if evaluation else None, "replaces_adapter": target.current_adapter_id,
                "gate": gate,
            },
        )  # fmt: skip
    return request


def rollback_request(
    *, actor: User, target: DeploymentTarget, adapter: Adapter | None, reason: str
) -> PromotionRequest:
    """Ask to return the target to ``adapter``, an earlier model of its history (None: the base model alone),
    for ``reason``. Raises ``DomainError`` without a reason, for an adapter the target never served or the
    current one, and when the target has a pending request (409)."""
    reason = reason.strip()
    if not reason:
        raise DomainError("Say why the target is rolled back.", field="reason")
    with transaction.atomic():
        target = _lock(target)
        current = adapter.pk if adapter is not None else None
        if target.current_adapter_id == current:
            what = adapter if adapter is not None else "The base model alone"
            raise DomainError(f"{what} is already the current model of {target}.", field="adapter", status=409)
        if adapter is not None and not Deployment.objects.filter(target=target, adapter=adapter).exists():
            raise DomainError(
                f"{adapter} was never the current model of {target}: a rollback returns to an earlier one.",
                field="adapter",
            )
        _refuse_if_pending(target)
        request = _open(target, kind=RequestKind.ROLLBACK, adapter=adapter, reason=reason, requested_by=actor)
        audit_event_record(
            actor=actor, action="deployment.rollback_request", target=request, project=target.project,
            payload={
                "target": target.name, "adapter": current, "adapter_sha256": adapter.sha256 if adapter else None,
                "replaces_adapter": target.current_adapter_id, "reason": reason,
            },
        )  # fmt: skip
    return request


def approvals_needed(request: PromotionRequest) -> int:
    return APPROVALS_FOR_ROLLBACK if request.kind == RequestKind.ROLLBACK else request.target.approvals_required


def _locked_pending(request: PromotionRequest) -> tuple[DeploymentTarget, PromotionRequest]:
    target = _lock(request.target)
    locked = PromotionRequest.objects.select_related("adapter", "adapter__job", "requested_by").get(pk=request.pk)
    locked.target = target
    if locked.state != RequestState.PENDING:
        raise DomainError(f"Request #{locked.pk} is {locked.get_state_display().lower()} already.", status=409)
    return target, locked


def _require_approver(actor: User, target: DeploymentTarget) -> None:
    if not user_has_project_perm(actor, target.project, ProjectPerm.APPROVE_PROMOTION):
        raise DomainError(f"{actor.username} may not approve or refuse requests of {target.project}.", status=403)


def promotion_approve(*, actor: User, request: PromotionRequest, note: str = "") -> PromotionRequest:
    """Approve a pending request. When it has the approvals it needs (``target.approvals_required`` for a
    promotion, one for a rollback) it is carried out in the same transaction: a history row, the target's
    current model, the request done. Raises ``DomainError`` for someone without the approve permission (403),
    the requester, the person who started the adapter's training job, a second approval by the same person
    (409), and a request no longer pending (409)."""
    with transaction.atomic():
        target, request = _locked_pending(request)
        _require_approver(actor, target)
        if request.requested_by_id == actor.pk:
            raise DomainError("The person who asked for it cannot approve it: someone else must.", status=403)
        adapter = request.adapter
        if adapter is not None and actor.pk in {adapter.started_by_id, adapter.job.created_by_id}:
            raise DomainError(
                f"{actor.username} started the training job of {adapter}, so cannot approve its "
                f"{request.get_kind_display().lower()}: someone else must.",
                status=403,
            )
        if PromotionApproval.objects.filter(request=request, approver=actor).exists():
            raise DomainError(f"{actor.username} has already approved request #{request.pk}.", status=409)
        PromotionApproval.objects.create(request=request, approver=actor, note=note.strip())
        approvals = PromotionApproval.objects.filter(request=request).count()
        needed = approvals_needed(request)
        audit_event_record(
            actor=actor, action="deployment.approve", target=request, project=target.project,
            payload={"target": target.name, "kind": request.kind, "adapter": request.adapter_id,
                     "approvals": approvals, "needed": needed, "note": note.strip()},
        )  # fmt: skip
        if approvals >= needed:
            _carry_out(target, request)
    return request


def _carry_out(target: DeploymentTarget, request: PromotionRequest) -> None:
    if target.current_adapter_id != request.replaces_adapter_id:
        raise DomainError(f"The current model of {target} changed since request #{request.pk} was made.", status=409)
    now = timezone.now()
    previous = target.current_adapter
    Deployment.objects.create(
        target=target, kind=request.kind, adapter=request.adapter, previous_adapter=previous, request=request,
        created_at=now,
    )  # fmt: skip
    target.current_adapter = request.adapter
    target.updated_at = now
    target.save(update_fields=["current_adapter", "updated_at"])
    request.state = RequestState.DONE
    request.decided_at = now
    request.save(update_fields=["state", "decided_at"])
    followups.ended("promotion", request.pk)
    approvers = list(
        PromotionApproval.objects.filter(request=request)
        .order_by("created_at")
        .values_list("approver__username", flat=True)
    )
    audit_event_record(
        actor=None, action=f"deployment.{'rollback' if request.kind == RequestKind.ROLLBACK else 'promote'}",
        target=target, project=target.project,
        payload={
            "target": target.name, "request": request.pk, "adapter": request.adapter_id,
            "adapter_sha256": request.adapter.sha256 if request.adapter else None,
            "previous_adapter": previous.pk if previous else None, "requested_by": request.requested_by.username,
            "approvers": approvers, "reason": request.reason,
        },
    )  # fmt: skip


def promotion_refuse(*, actor: User, request: PromotionRequest, note: str = "") -> PromotionRequest:
    """Refuse a pending request (an approver who is not its requester: the requester withdraws). Raises
    ``DomainError`` for someone without the approve permission (403), the requester, a request no longer
    pending (409)."""
    with transaction.atomic():
        target, request = _locked_pending(request)
        _require_approver(actor, target)
        if request.requested_by_id == actor.pk:
            raise DomainError("The person who asked for it withdraws it rather than refusing it.", status=403)
        _decide(request, RequestState.REFUSED, note)
        followups.ended("promotion", request.pk)
        audit_event_record(
            actor=actor, action="deployment.refuse", target=request, project=target.project,
            payload={"target": target.name, "kind": request.kind, "adapter": request.adapter_id, "note": note.strip()},
        )  # fmt: skip
    return request


def promotion_withdraw(*, actor: User, request: PromotionRequest, note: str = "") -> PromotionRequest:
    """The requester (or another project admin) withdraws a pending request. Raises ``DomainError`` for anyone
    else (403) and for a request no longer pending (409)."""
    with transaction.atomic():
        target, request = _locked_pending(request)
        may_manage = user_has_project_perm(actor, target.project, ProjectPerm.RUN_TRAINING)
        if request.requested_by_id != actor.pk and not may_manage:
            raise DomainError("Only the requester or a project admin may withdraw a request.", status=403)
        _decide(request, RequestState.WITHDRAWN, note)
        followups.ended("promotion", request.pk)
        audit_event_record(
            actor=actor, action="deployment.withdraw", target=request, project=target.project,
            payload={"target": target.name, "kind": request.kind, "adapter": request.adapter_id, "note": note.strip()},
        )  # fmt: skip
    return request


def _decide(request: PromotionRequest, state: str, note: str) -> None:
    request.state = state
    request.decision_note = note.strip()
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decision_note", "decided_at"])
