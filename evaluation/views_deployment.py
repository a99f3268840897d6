"""htmx pages of deployment targets: the project's targets with their current models, a new target, a target's
page (current model, history, the pending request with its gate and approvals, the forms to ask for a
promotion or a rollback, approve, refuse or withdraw), and the fragment of an adapter's evaluations and
deployments that its lineage page loads."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, project_perms_for, request_user
from core.errors import DomainError
from evaluation import selectors, services
from evaluation.deployment import approvals_needed
from evaluation.forms_deployment import NoteForm, PromotionForm, RollbackForm, TargetForm, ThresholdsForm
from evaluation.models import DeploymentTarget, PromotionRequest
from evaluation.permissions import (
    can_approve_promotions,
    can_manage_deployments,
    get_project_for_deployments,
    get_request_for_user,
    get_target_for_user,
)
from training.permissions import READ_PERMS as TRAINING_READ_PERMS
from training.permissions import get_adapter_for_user


@login_required
@require_GET
def target_list(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_deployments(request.user, pk)
    context = {
        "project": project,
        "targets": selectors.targets_of(project),
        "can_manage": can_manage_deployments(request.user, project),
    }
    return render(request, "evaluation/deployments.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def target_new(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.RUN_TRAINING)
    form = TargetForm(request.POST or None, project_id=project.pk)
    if request.method == "POST" and form.is_valid():
        try:
            target = services.deployment_target_create(
                actor=request_user(request), project=project, **form.cleaned_data
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Deployment target {target} is created.")
            return redirect("deployment_target", pk=pk, name=target.name)
    context = {"project": project, "form": form, "heading": "New deployment target"}
    return render(request, "evaluation/deployment_new.html", context, status=400 if form.errors else 200)


def _target_page(request: HttpRequest, target: DeploymentTarget, status: int = 200, **forms: Any) -> HttpResponse:
    project = target.project
    pending = selectors.pending_request(target)
    user = request_user(request)
    can_manage = can_manage_deployments(user, project)
    can_approve = can_approve_promotions(user, project)
    approvals = selectors.approvals_of(pending) if pending else []
    approved = any(a["approver"] == user.username for a in approvals)
    context = {
        "project": project,
        "heading": f"Deployment target {target.name}",
        "target": target,
        "current": selectors.current_pointer(target),
        "history": selectors.history_of(target)[:100],
        "requests": selectors.requests_of(target)[:50],
        "pending": pending,
        "approvals": approvals,
        "approved": approved,
        "needed": approvals_needed(pending) if pending else 0,
        "can_manage": can_manage,
        "can_read_training": bool(project_perms_for(user, project) & TRAINING_READ_PERMS),
        "can_approve": can_approve and pending is not None and pending.requested_by_id != user.pk and not approved,
        "can_withdraw": pending is not None and can_manage,
        "promotion_form": forms.get("promotion_form") or PromotionForm(target=target),
        "rollback_form": forms.get("rollback_form") or RollbackForm(target=target),
        "thresholds_form": forms.get("thresholds_form")
        or ThresholdsForm(
            initial={
                "min_win_rate_lower": target.min_win_rate_lower,
                "max_metric_regression": target.max_metric_regression,
                "description": target.description,
            }
        ),
        "note_form": NoteForm(),
    }
    return render(request, "evaluation/deployment_target.html", context, status=status)


@login_required
@require_GET
def target_detail(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    return _target_page(request, get_target_for_user(request.user, pk, name))


@login_required
@require_POST
def target_edit(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    target = get_target_for_user(request.user, pk, name, ProjectPerm.RUN_TRAINING)
    form = ThresholdsForm(request.POST)
    if form.is_valid():
        try:
            services.deployment_target_update(actor=request_user(request), target=target, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"The thresholds of {target} are saved.")
            return redirect("deployment_target", pk=pk, name=name)
    return _target_page(request, target, status=400, thresholds_form=form)


@login_required
@require_POST
def target_request_promotion(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    target = get_target_for_user(request.user, pk, name, ProjectPerm.RUN_TRAINING)
    form = PromotionForm(request.POST, target=target)
    if form.is_valid():
        try:
            made = services.promotion_request(actor=request_user(request), target=target, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request, f"The gate passed: request #{made.pk} waits for {approvals_needed(made)} approvals."
            )
            return redirect("deployment_target", pk=pk, name=name)
    return _target_page(request, target, status=400, promotion_form=form)


@login_required
@require_POST
def target_request_rollback(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    target = get_target_for_user(request.user, pk, name, ProjectPerm.RUN_TRAINING)
    form = RollbackForm(request.POST, target=target)
    if form.is_valid():
        try:
            made = services.rollback_request(
                actor=request_user(request), target=target, adapter=form.chosen_adapter(),
                reason=form.cleaned_data["reason"],
            )  # fmt: skip
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Rollback request #{made.pk} waits for one approval by someone else.")
            return redirect("deployment_target", pk=pk, name=name)
    return _target_page(request, target, status=400, rollback_form=form)


def _decide(
    request: HttpRequest, pk: int, name: str, request_pk: int, perm: str,
    decide: Callable[..., PromotionRequest], done: str,
) -> HttpResponse:  # fmt: skip
    found = get_request_for_user(request.user, pk, name, request_pk, perm)
    form = NoteForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        decided = decide(actor=request_user(request), request=found, note=note)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(request=decided, state=decided.get_state_display().lower()))
    return redirect("deployment_target", pk=pk, name=name)


@login_required
@require_POST
def request_approve(request: HttpRequest, pk: int, name: str, request_pk: int) -> HttpResponse:
    return _decide(
        request, pk, name, request_pk, ProjectPerm.APPROVE_PROMOTION, services.promotion_approve,
        "Your approval is recorded; request #{request.pk} is {state}.",
    )  # fmt: skip


@login_required
@require_POST
def request_refuse(request: HttpRequest, pk: int, name: str, request_pk: int) -> HttpResponse:
    return _decide(
        request, pk, name, request_pk, ProjectPerm.APPROVE_PROMOTION, services.promotion_refuse,
        "Request #{request.pk} is refused.",
    )  # fmt: skip


@login_required
@require_POST
def request_withdraw(request: HttpRequest, pk: int, name: str, request_pk: int) -> HttpResponse:
    return _decide(
        request, pk, name, request_pk, ProjectPerm.RUN_TRAINING, services.promotion_withdraw,
        "Request #{request.pk} is withdrawn.",
    )  # fmt: skip


@login_required
@require_GET
def adapter_deployments(request: HttpRequest, pk: int, adapter_pk: int) -> HttpResponse:
    """The adapter's evaluations, requests and deployment history: a fragment its lineage page loads."""
    adapter = get_adapter_for_user(request.user, pk, adapter_pk)
    context = {
        "project": adapter.project,
        "adapter": adapter,
        "evaluations": selectors.adapter_evaluations(adapter)[:50],
        "requests": selectors.adapter_requests(adapter)[:50],
        "deployments": selectors.adapter_deployments(adapter)[:100],
    }
    return render(request, "evaluation/_adapter_deployments.html", context)
