"""htmx pages of rounds: a project's rounds (state, counts, win rate, the adapter each produced), a new round,
a round's page (its steps with their rows, the pairs with the policy and the reward scores, the buttons to
build the release early or end the round), polled while it moves."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import request_user
from core.errors import DomainError
from rounds import selectors, services
from rounds.forms import RoundForm
from rounds.models import Round
from rounds.permissions import (
    can_run_training,
    get_project_for_rounds,
    get_project_for_running_rounds,
    get_round_for_runner,
    get_round_for_user,
)


@login_required
@require_GET
def round_list(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_rounds(request.user, pk)
    rounds = list(selectors.rounds_of(project))
    context = {
        "project": project,
        "rounds": [(r, selectors.round_counts(r)) for r in rounds],
        "can_run": can_run_training(request.user, project),
        "open_round": next((r for r in rounds if r.is_open), None),
    }
    return render(request, "rounds/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def round_new(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_running_rounds(request.user, pk)
    form = RoundForm(request.POST or None, request.FILES or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        upload = data.get("file")
        try:
            round_ = services.round_start(
                actor=request_user(request), project=project, target=data["target"], source=data["source"],
                candidates_per_prompt=data["candidates_per_prompt"], pairs_per_prompt=data["pairs_per_prompt"],
                pair_policy=data["pair_policy"], reward_model=data.get("reward_model"), decoding=form.decoding(),
                dpo_preset=data["dpo_preset"], dpo_values=form.dpo_values(), eval_fraction=data["eval_fraction"],
                min_decided=data["min_decided"], limit=data.get("limit"), upload=upload, fmt=data.get("fmt") or "",
                source_name=upload.name if upload is not None else "",
            )  # fmt: skip
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Round {round_.number} started: its policy is answering the new prompts.")
            return redirect("round", pk=pk, number=round_.number)
    context = {"project": project, "form": form, "fieldsets": form.fieldsets(), "heading": "New round"}
    return render(request, "rounds/new.html", context, status=400 if form.errors else 200)


def _context(request: HttpRequest, round_: Round) -> dict[str, object]:
    return {
        "project": round_.project,
        "round": round_,
        "counts": selectors.round_counts(round_),
        "pairs": list(selectors.pairs_of(round_)[:200]),
        "lineage": selectors.lineage_of(round_),
        "can_run": can_run_training(request.user, round_.project),
        "heading": f"Round {round_.number}",
    }


@login_required
@require_GET
def round_detail(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    round_ = get_round_for_user(request.user, pk, number)
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "status":
        response = render(request, "rounds/_status.html", _context(request, round_))
        if not round_.is_open:
            response["HX-Refresh"] = "true"
        return response
    return render(request, "rounds/detail.html", _context(request, round_))


@login_required
@require_POST
def round_release(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    round_ = get_round_for_runner(request.user, pk, number)
    try:
        round_ = services.round_release_start(actor=request_user(request), round_=round_)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Round {round_.number}'s release is being built from the decided pairs.")
    return redirect("round", pk=pk, number=number)


@login_required
@require_POST
def round_end(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    round_ = get_round_for_runner(request.user, pk, number)
    try:
        round_ = services.round_end(actor=request_user(request), round_=round_, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Round {round_.number} is {round_.get_state_display().lower()}.")
    return redirect("round", pk=pk, number=number)
