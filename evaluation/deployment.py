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
from core.errors import DomainError
from evaluation.models import (
    Deployment,
    DeploymentTarget,
    Evaluation,
    EvaluationState,
    PromotionApproval,
    PromotionRequest,
    RequestKind,
    RequestState,
)
from training.models import Adapter, BaseModel, BaseModelState

APPROVALS_FOR_ROLLBACK = 1
RESERVED_NAMES = frozenset({"new"})  # the address of the new-target page
TARGET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")

# Held-out figures the training job measured (``Adapter.metrics["evaluation"]``), first found first compared:
# (key, label, whether lower is better). SFT jobs measure eval loss, DPO jobs preference accuracy.
HELD_OUT_MEASURES: tuple[tuple[str, str, bool], ...] = (
    ("eval_loss", "held-out eval loss", True),
    ("preference_accuracy", "held-out preference accuracy", False),
)


# --- The gate ----------------------------------------------------------------------------------------------


def model_label(adapter: Adapter | None, base_model: BaseModel) -> str:
    return str(adapter) if adapter is not None else f"{base_model} (no adapter)"


def _check(name: str, label: str, passed: bool, detail: str, **numbers: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "passed": passed, "detail": detail, **numbers}


def _evaluation_check(target: DeploymentTarget, adapter: Adapter, evaluation: Evaluation | None) -> dict[str, Any]:
    label = "Finished evaluation of this adapter"
    if evaluation is None:
        return _check("evaluation", label, False, "No evaluation was given: evaluate the adapter first.")
    if evaluation.project_id != target.project_id:
        return _check("evaluation", label, False, f"Evaluation “{evaluation}” belongs to another project.")
    if evaluation.state != EvaluationState.FINISHED or not evaluation.results:
        state = evaluation.get_state_display().lower()
        return _check("evaluation", label, False, f"Evaluation “{evaluation}” has not finished (it is {state}).")
    first = evaluation.systems.filter(position=0).first()
    if first is None or first.adapter_id != adapter.pk:
        return _check(
            "evaluation", label, False, f"Evaluation “{evaluation}” did not evaluate {adapter} (its first system)."
        )
    judgements = int(evaluation.results.get("judgements", 0))
    return _check(
        "evaluation", label, True, f"Evaluation “{evaluation}” finished with {judgements} judgements.",
        evaluation=evaluation.pk, judgements=judgements,
    )  # fmt: skip


def _head_to_head(target: DeploymentTarget, results: dict[str, Any]) -> dict[str, Any] | None:
    """The entry of ``results`` that sets the adapter against the target's current model."""
    for entry in results.get("head_to_head", []):
        if target.current_adapter_id is not None and entry.get("adapter_id") == target.current_adapter_id:
            return dict(entry)
        if (
            target.current_adapter_id is None
            and entry.get("adapter_id") is None
            and entry.get("base_model_id") == target.base_model_id
        ):
            return dict(entry)
    return None


def _win_rate_check(target: DeploymentTarget, evaluation: Evaluation | None, finished: bool) -> dict[str, Any]:
    threshold = target.min_win_rate_lower
    label = "Human win rate against the current model"
    current = model_label(target.current_adapter, target.base_model)
    if evaluation is None or not finished:
        return _check("win_rate", label, False, "No finished evaluation to read it from.", threshold=threshold)
    entry = _head_to_head(target, evaluation.results or {})
    if entry is None:
        return _check(
            "win_rate", label, False,
            f"Evaluation “{evaluation}” did not compare the adapter with the current model, {current}.",
            threshold=threshold,
        )  # fmt: skip
    low = float(entry["low"])
    confidence = round(100 * float((evaluation.results or {}).get("confidence", 0.95)))
    numbers = {
        "threshold": threshold,
        "low": low,
        "high": float(entry["high"]),
        "win_rate": float(entry["win_rate"]),
        "wins": int(entry["wins"]),
        "ties": int(entry["ties"]),
        "losses": int(entry["losses"]),
    }
    passed = low >= threshold
    relation = "reaches" if passed else "is below"
    detail = (
        f"Against {current}: win rate {numbers['win_rate']:.3f} ({numbers['wins']} wins, {numbers['ties']} ties, "
        f"{numbers['losses']} losses); the lower bound of its {confidence}% interval, {low:.3f}, {relation} the "
        f"target's threshold {threshold:.3f}."
    )
    return _check("win_rate", label, passed, detail, **numbers)


def _held_out(adapter: Adapter, when: str) -> dict[str, Any]:
    figures = (adapter.metrics or {}).get("evaluation", {}).get(when) or {}
    return figures if isinstance(figures, dict) else {}


def _held_out_check(target: DeploymentTarget, adapter: Adapter) -> dict[str, Any]:
    margin = target.max_metric_regression
    label = "Held-out figures against the current model"
    current = target.current_adapter
    mine = _held_out(adapter, "after")
    if current is not None:
        theirs, against = _held_out(current, "after"), f"the current adapter {current}"
    else:
        theirs, against = _held_out(adapter, "before"), "the base model on this adapter's held-out rows"
    for key, measure, lower_is_better in HELD_OUT_MEASURES:
        if key not in mine or key not in theirs:
            continue
        candidate, baseline = float(mine[key]), float(theirs[key])
        limit = baseline * (1 + margin) if lower_is_better else baseline * (1 - margin)
        passed = candidate <= limit if lower_is_better else candidate >= limit
        change = (candidate - baseline) / abs(baseline) if baseline else None
        worse = "above" if lower_is_better else "below"
        detail = (
            f"{measure.capitalize()} {candidate:.4f} against {baseline:.4f} for {against}: "
            + ("within" if passed else f"more than {margin:.1%} {worse}")
            + f" the allowed {margin:.1%} (limit {limit:.4f})."
        )
        return _check(
            "held_out", label, passed, detail,
            measure=key, candidate=candidate, current=baseline, limit=limit, margin=margin, change=change,
        )  # fmt: skip
    if current is None:
        reason = "Skipped: the target serves the base model alone and this adapter has no held-out figures measured "
        return _check("held_out", label, True, reason + "before and after its training.", skipped=True, margin=margin)
    if not any(key in mine for key, _, _ in HELD_OUT_MEASURES):
        return _check(
            "held_out", label, False,
            f"This adapter has no held-out figures (its release had no held-out rows); {against} cannot be "
            "compared with it.",
            margin=margin,
        )  # fmt: skip
    return _check(
        "held_out", label, True,
        f"Skipped: {against} has no held-out figure of the kind this adapter has, so none can be compared.",
        skipped=True, margin=margin,
    )  # fmt: skip


def gate_check(*, target: DeploymentTarget, adapter: Adapter, evaluation: Evaluation | None) -> dict[str, Any]:
    """The promotion gate for ``adapter`` on ``target`` with ``evaluation``: every check with pass or fail and its
    numbers (stored on the request, shown on its page). Reads only."""
    base = _check(
        "base_model", "Trained on the target's base model", adapter.base_model_id == target.base_model_id,
        f"{adapter} was trained on {adapter.base_model}; the target serves {target.base_model}.",
    )  # fmt: skip
    evaluated = _evaluation_check(target, adapter, evaluation)
    checks = [
        base,
        evaluated,
        _win_rate_check(target, evaluation, evaluated["passed"]),
        _held_out_check(target, adapter),
    ]
    return {
        "passed": all(check["passed"] for check in checks),
        "checks": checks,
        "current": {
            "adapter": target.current_adapter_id,
            "base_model": target.base_model_id,
            "label": model_label(target.current_adapter, target.base_model),
        },
        "thresholds": {
            "min_win_rate_lower": target.min_win_rate_lower,
            "max_metric_regression": target.max_metric_regression,
        },
        "checked_at": timezone.now().isoformat(),
    }


# --- Targets -----------------------------------------------------------------------------------------------


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
