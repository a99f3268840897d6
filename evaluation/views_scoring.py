"""htmx pages of scoring runs (those who read training; who may train starts and cancels): a project's runs, the
run form, and a run's live page (progress, answers per second, the scores summed up and a sample, Cancel)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import request_user
from core.errors import DomainError
from core.http import parse_id
from evaluation import selectors, services
from evaluation.forms_scoring import ScoringRunForm
from evaluation.permissions import (
    can_run_training,
    get_project_for_generating,
    get_project_for_generation,
    get_scoring_run_for_runner,
    get_scoring_run_for_user,
)


@login_required
@require_GET
def scoring_list(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_generation(request.user, pk)
    services.scoring_runs_reap()
    runs = list(selectors.scoring_runs_of(project)[:200])
    context = {
        "project": project,
        "runs": runs,
        "can_run": can_run_training(request.user, project),
        "active": any(run.is_active for run in runs),
    }
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "runs":
        return render(request, "evaluation/_scoring_rows.html", context)
    return render(request, "evaluation/scoring_runs.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def scoring_new(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_generating(request.user, pk)
    initial = {}
    chosen = parse_id(request.GET.get("generation_run", ""))
    if chosen is not None and selectors.scorable_runs_of(project).filter(pk=chosen).exists():
        initial["generation_run"] = chosen
    form = ScoringRunForm(request.POST or None, project=project, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = services.scoring_run_start(
                actor=request_user(request), project=project, reward_model=data["reward_model"],
                generation_run=data.get("generation_run"), batch_size=data["batch_size"],
            )  # fmt: skip
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"{run} is queued for a gpu worker.")
            return redirect("scoring_run", pk=pk, scoring_pk=run.pk)
    context = {"project": project, "form": form}
    return render(request, "evaluation/scoring_new.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def scoring_run_detail(request: HttpRequest, pk: int, scoring_pk: int) -> HttpResponse:
    services.scoring_runs_reap()
    run = get_scoring_run_for_user(request.user, pk, scoring_pk)
    context = {
        "project": run.project,
        "run": run,
        "summary": selectors.scores_summary(run),
        "sample": selectors.scored_sample_of(run),
        "can_run": can_run_training(request.user, run.project),
    }
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "status":
        response = render(request, "evaluation/_scoring_status.html", context)
        if not run.is_active:
            response["HX-Refresh"] = "true"
        return response
    context["heading"] = f"Scoring run #{run.pk}"
    return render(request, "evaluation/scoring_run.html", context)


@login_required
@require_POST
def scoring_run_cancel(request: HttpRequest, pk: int, scoring_pk: int) -> HttpResponse:
    run = get_scoring_run_for_runner(request.user, pk, scoring_pk)
    try:
        run = services.scoring_run_cancel(actor=request_user(request), run=run)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        done = run.state == "cancelled"
        messages.success(request, f"{run} is cancelled." if done else f"Cancelling {run}: its worker stops it now.")
    return redirect("scoring_run", pk=pk, scoring_pk=scoring_pk)
