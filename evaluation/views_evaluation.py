"""htmx pages of the evaluation app: a project's evaluations, the new-evaluation form, and an evaluation's page
(the generation runs' progress, then the results with their intervals, and Finish)."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user
from annotation.parsing import ImportFormat
from core.errors import DomainError
from evaluation import selectors, services
from evaluation.forms_evaluation import EvaluationForm
from evaluation.models import EvaluationState, PromptSource
from evaluation.permissions import (
    can_run_evaluations,
    get_evaluation_for_runner,
    get_evaluation_for_user,
    get_project_for_evaluations,
)
from evaluation.prompts import prompts_from_upload
from evaluation.results import head_to_head_against


@login_required
@require_GET
def evaluation_list(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_evaluations(request.user, pk)
    context = {
        "project": project,
        "evaluations": selectors.evaluations_of(project)[:200],
        "can_run": can_run_evaluations(request.user, project),
    }
    return render(request, "evaluation/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def evaluation_new(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.RUN_TRAINING)
    initial: dict[str, Any] = {"against": "base_model", "source": PromptSource.RELEASE_EVAL}
    if request.GET.get("adapter"):
        initial["adapter"] = request.GET["adapter"]
    form = EvaluationForm(request.POST or None, request.FILES or None, project=project, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            upload = data.get("upload")
            prompts = (
                prompts_from_upload(
                    project=project, upload=upload, fmt=data.get("fmt") or ImportFormat.CHAT_JSONL,
                    source_name=upload.name,
                )
                if data["source"] == PromptSource.UPLOAD and upload
                else None
            )  # fmt: skip
            evaluation = services.evaluation_start(
                actor=request_user(request),
                project=project,
                adapter=data["adapter"],
                against=form.against_side(),
                extra=form.extra_sides(),
                source=data["source"],
                release=data.get("release"),
                prompts=prompts,
                source_name=upload.name if upload else "",
                decoding=form.decoding(),
                name=data.get("name") or "",
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"{evaluation} is generating its answers.")
            return redirect("evaluation", pk=pk, evaluation_pk=evaluation.pk)
    context = {"project": project, "form": form, "slots": [{"field": field} for field in form]}
    return render(request, "evaluation/new.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def evaluation_detail(request: HttpRequest, pk: int, evaluation_pk: int) -> HttpResponse:
    evaluation = get_evaluation_for_user(request.user, pk, evaluation_pk)
    figures = selectors.figures_of(evaluation)
    context = {
        "project": evaluation.project,
        "evaluation": evaluation,
        "systems": list(selectors.systems_of(evaluation)),
        "figures": figures,
        "headline": head_to_head_against(figures) if figures else None,
        "can_run": can_run_evaluations(request.user, evaluation.project),
        "generating": evaluation.state == EvaluationState.GENERATING,
        "judging": evaluation.state == EvaluationState.JUDGING,
        "tables": _group_tables(figures) if figures else [],
    }
    return render(request, "evaluation/detail.html", context)


@login_required
@require_POST
def evaluation_finish(request: HttpRequest, pk: int, evaluation_pk: int) -> HttpResponse:
    evaluation = get_evaluation_for_runner(request.user, pk, evaluation_pk)
    try:
        services.evaluation_finish(actor=request_user(request), evaluation=evaluation)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{evaluation} is finished: its results are frozen.")
    return redirect("evaluation", pk=pk, evaluation_pk=evaluation_pk)


def _group_tables(figures: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The grouped result tables, each row with the name of its group."""
    return [
        ("Per criterion", "per-criterion", [{**r, "group": r["criterion"]} for r in figures["per_criterion"]]),
        ("Per annotator", "per-annotator", [{**r, "group": r["annotator"]} for r in figures["per_annotator"]]),
        (
            "Per metadata value",
            "per-metadata",
            [{**r, "group": f"{r['key']}: {r['value']}"} for r in figures["per_metadata"]],
        ),
    ]
