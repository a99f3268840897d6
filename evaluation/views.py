"""htmx pages of generation runs: a project's runs, the run form, and a run's live page (progress, tokens/s,
scrubbed values, a sample of the scrubbed answers, provenance, Cancel)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import request_user
from core.errors import DomainError
from evaluation import selectors, services
from evaluation.forms import GenerationRunForm
from evaluation.permissions import (
    can_run_training,
    get_project_for_generating,
    get_project_for_generation,
    get_run_for_runner,
    get_run_for_user,
)


@login_required
@require_GET
def run_list(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_generation(request.user, pk)
    services.generation_runs_reap()
    runs = list(selectors.runs_of(project)[:200])
    context = {
        "project": project,
        "runs": runs,
        "can_run": can_run_training(request.user, project),
        "active": any(run.is_active for run in runs),
    }
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "runs":
        return render(request, "evaluation/_run_rows.html", context)
    return render(request, "evaluation/runs.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_generating(request.user, pk)
    release = selectors.releases_with_eval(project).first()
    initial: dict[str, object] = {"release": release.pk} if release is not None else {"source": "project_items"}
    form = GenerationRunForm(request.POST or None, request.FILES or None, project=project, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        upload = data.get("file")
        try:
            run = services.generation_run_start(
                actor=request_user(request), project=project, base_model=data["base_model"],
                adapter=data.get("adapter"), source=data["source"], decoding=form.decoding(),
                release=data.get("release"), limit=data.get("limit"), upload=upload, fmt=data.get("fmt") or "",
                source_name=upload.name if upload is not None else "",
            )  # fmt: skip
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"{run} is queued for a gpu worker.")
            return redirect("generation_run", pk=pk, run_pk=run.pk)
    context = {"project": project, "form": form, "fieldsets": form.fieldsets()}
    return render(request, "evaluation/run_new.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def run_detail(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    services.generation_runs_reap()
    run = get_run_for_user(request.user, pk, run_pk)
    context = {
        "project": run.project,
        "run": run,
        "sample": selectors.sample_of(run),
        "can_run": can_run_training(request.user, run.project),
    }
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "status":
        response = render(request, "evaluation/_run_status.html", context)
        if not run.is_active:
            response["HX-Refresh"] = "true"
        return response
    context["heading"] = f"Generation run #{run.pk}"
    return render(request, "evaluation/run.html", context)


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = get_run_for_runner(request.user, pk, run_pk)
    try:
        run = services.generation_run_cancel(actor=request_user(request), run=run)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        done = run.state == "cancelled"
        messages.success(request, f"{run} is cancelled." if done else f"Cancelling {run}: its worker stops it now.")
    return redirect("generation_run", pk=pk, run_pk=run_pk)
