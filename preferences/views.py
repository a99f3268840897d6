"""htmx pages of the preferences app: the comparison page, adjudication, agreement and bias."""

import json
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, project_perms_for, request_user
from annotation import queue_left
from annotation import services as annotation_services
from annotation.models import Item
from annotation.rendering import render_markdown
from annotation.selectors import current_rubric, draft_for
from core.errors import DomainError
from core.figures import figures_of
from core.http import is_htmx, parse_count, render_work
from preferences import charts, results, selectors, services
from preferences.forms import PreferenceSettingsForm
from preferences.models import COMPARISON, AnnotatorQuality, JudgementMode
from preferences.permissions import (
    SETTINGS,
    get_adjudication_for_reviewer,
    get_comparison_for_user,
    get_project_for_quality,
)


def _compare_context(request: HttpRequest, item: Item, *, error: str = "", notice: str = "") -> dict[str, Any]:
    user = request_user(request)
    config = selectors.preference_settings(item.project)
    mode = selectors.judgement_mode(item.project, item)
    _, order = results.display_order(user, item)
    letters = results.LETTERS
    shown = [
        {"letter": letters[position], "html": render_markdown(item.candidates[candidate]["content"])}
        for position, candidate in enumerate(order)
    ]
    draft = draft_for(user, item)
    rubric = current_rubric(item.project)
    return {
        "project": item.project,
        "item": item,
        "candidates": shown,  # content only, in display order: model names never reach the page
        "mode": mode,
        "modes": JudgementMode,
        "criteria": list(rubric.criteria) if rubric and mode == JudgementMode.PER_CRITERION else [],
        "rubric": rubric,
        "guidelines": render_markdown(rubric.guidelines) if rubric and rubric.guidelines else "",
        "rationale_required": config.rationale_required,
        "draft": draft.data if draft else {},
        # Read by compare.js from an attribute: htmx drops <script> elements from what it swaps in.
        "draft_json": json.dumps((draft.data if draft else {}).get("shown") or {}),
        "draft_restored": bool(draft) and not error,
        "time_spent_ms": draft.time_spent_ms if draft else 0,
        "idempotency_key": uuid.uuid4().hex,
        "page_token": annotation_services.draft_page_token(),
        "rank_options": range(1, len(shown) + 1),
        "error": error,
        "notice": notice,
    }


# What the page says after a submit or a skip, when there is a next comparison (with none left, the "nothing
# left" section says it in its heading and explains where the rest of the work went).
_AFTER = {
    "saved": "Saved. Here is the next comparison.",
    "skipped": "Skipped. It comes back to you once nothing else is left.",
}


def _next(
    request: HttpRequest,
    project_pk: int,
    *,
    notice: str = "",
    warn: bool = False,
    after: str = "",
    skipped: int | None = None,
) -> HttpResponse:
    project = get_project_for_user(request.user, project_pk, ProjectPerm.ANNOTATE, with_settings=SETTINGS)
    user = request_user(request)
    item = services.comparison_next(user=user, project=project)
    if item is None:
        left = queue_left.left_for(user, project, kind=COMPARISON)
        context: dict[str, Any] = {"project": project, "notice": notice, "after": after, "left": left}
        template = "preferences/_compare_empty.html"
    else:
        if after == "skipped" and item.pk == skipped:
            notice = notice or "Skipped, but nothing else is left for you, so here it is again."
        context = _compare_context(request, item, notice=notice or _AFTER.get(after, ""))
        template = "preferences/_compare.html"
    context["notice_warn"] = warn
    push_url = reverse("compare_item", args=[project.pk, item.pk]) if item is not None else None
    return render_work(request, page="preferences/compare.html", fragment=template, context=context, push_url=push_url)


@login_required
@require_GET
def compare(request: HttpRequest, pk: int) -> HttpResponse:
    return _next(request, pk)


@login_required
@require_GET
def compare_item(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    item = get_comparison_for_user(request.user, pk, item_pk)
    user = request_user(request)
    if item.judgements.filter(annotator=user).exists():
        messages.info(request, f"You judged comparison #{item.pk} already; here is your next one.")
        return redirect("compare", pk=pk)
    if not selectors.holds_comparison(user, item):
        return redirect("compare", pk=pk)
    context = _compare_context(request, item)
    return render(request, "preferences/compare.html", {**context, "workspace_template": "preferences/_compare.html"})


def _shown_from_post(request: HttpRequest, mode: str) -> dict[str, Any]:
    post = request.POST
    if mode == JudgementMode.PAIRWISE:
        return {"choice": post.get("choice", ""), "strength": post.get("strength") or None}
    if mode == JudgementMode.RANKING:
        ranks: dict[int, list[str]] = {}
        for key in post:
            value = post.get(key, "")
            rank = parse_count(value, -1)
            if key.startswith("rank_") and rank >= 0:
                ranks.setdefault(rank, []).append(key[len("rank_") :])
        return {"ranking": [sorted(ranks[r]) for r in sorted(ranks)]}
    return {
        "criteria": {k[len("crit_") :]: v for k, v in post.items() if k.startswith("crit_") and v},
        "overall": post.get("overall", ""),
    }


def _time(request: HttpRequest) -> int:
    return parse_count(request.POST.get("time_spent_ms"))


@login_required
@require_POST
def compare_draft(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    item = get_comparison_for_user(request.user, pk, item_pk)
    mode = selectors.judgement_mode(item.project, item)
    data = {"shown": _shown_from_post(request, mode), "rationale": request.POST.get("rationale", "")}
    try:
        saved = services.comparison_draft_save(
            user=request_user(request),
            item=item,
            data=data,
            time_spent_ms=_time(request),
            page=request.POST.get("page", ""),
        )
    except DomainError as exc:
        return render(request, "_draft_refused.html", {"message": exc.message})
    if saved is not None and not selectors.holds_comparison(request_user(request), item):
        return render(request, "_draft_lost.html")
    text = f"Draft saved {saved.updated_at:%H:%M:%S}" if saved else "Already submitted"
    return HttpResponse(f'<span id="draft-status" class="muted small">{text}</span>')


@login_required
@require_POST
def compare_submit(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    item = get_comparison_for_user(request.user, pk, item_pk)
    mode = selectors.judgement_mode(item.project, item)
    shown = _shown_from_post(request, mode)
    rationale = request.POST.get("rationale", "")
    try:
        services.judgement_submit(
            user=request_user(request),
            item=item,
            shown=shown,
            rationale=rationale,
            time_spent_ms=_time(request),
            idempotency_key=request.POST.get("idempotency_key", ""),
        )
    except DomainError as exc:
        if exc.conflict:  # judged before (Back, or another tab): say so and move on
            return _next(request, pk, notice=exc.message, warn=True)
        # Keep everything chosen and typed: save it as the draft and show the form again with the reason.
        services.comparison_draft_save(
            user=request_user(request),
            item=item,
            data={"shown": shown, "rationale": rationale},
            time_spent_ms=_time(request),
        )
        context = _compare_context(request, item, error=exc.message)
        if is_htmx(request):
            return render(request, "preferences/_compare.html", context)
        context["workspace_template"] = "preferences/_compare.html"
        return render(request, "preferences/compare.html", context, status=422)
    return _next(request, pk, after="saved")


@login_required
@require_POST
def compare_skip(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    item = get_comparison_for_user(request.user, pk, item_pk)
    try:
        services.comparison_skip(user=request_user(request), item=item)
    except DomainError as exc:
        return _next(request, pk, notice=exc.message)
    return _next(request, pk, after="skipped", skipped=item.pk)


@login_required
@require_GET
def adjudications(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.REVIEW)
    return render(
        request,
        "preferences/adjudications.html",
        {
            "project": project,
            "open": selectors.open_adjudications(project, viewer=request_user(request)),
            "decided": [(a, results.describe_result(a.result)) for a in selectors.decided_adjudications(project)],
        },
    )


def _adjudication_result(request: HttpRequest, count: int, ranked: bool) -> dict[str, Any]:
    """The reviewer's final answer from the form, in candidate ids (the service checks it). The form names each
    candidate by its number, as the page and every judgement summary do (1 is candidate id 0):
    ``winner=2`` or ``rank_2=1`` for the second candidate."""
    if ranked:
        ranks: dict[int, list[int]] = {}
        for candidate in range(count):
            rank = parse_count(request.POST.get(f"rank_{candidate + 1}"), -1)
            if rank >= 0:  # an unranked candidate is missing from the ranking: the service refuses it
                ranks.setdefault(rank, []).append(candidate)
        return {"ranking": [ranks[r] for r in sorted(ranks)]}
    winner = request.POST.get("winner", "")
    number = parse_count(winner, -1)
    if number >= 1:
        return {"winner": number - 1}
    return {"winner": winner if number < 0 else None}  # 0 (or a word) names no candidate: refused


@login_required
@require_http_methods(["GET", "POST"])
def adjudicate(request: HttpRequest, pk: int, adjudication_pk: int) -> HttpResponse:
    adjudication = get_adjudication_for_reviewer(request.user, pk, adjudication_pk)
    item = adjudication.item
    error = ""
    ranked = len(item.candidates) > 2 or selectors.preference_settings(item.project).mode == JudgementMode.RANKING
    if request.method == "POST":
        try:
            result = _adjudication_result(request, len(item.candidates), ranked)
            services.adjudication_decide(
                reviewer=request_user(request),
                adjudication=adjudication,
                result=result,
                note=request.POST.get("note", ""),
            )
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, f"Comparison #{item.pk} adjudicated: {results.describe_result(result)}.")
            return redirect("adjudications", pk=pk)
    judgements = selectors.judgements_of(item)
    posted = request.POST if request.method == "POST" else {}
    return render(
        request,
        "preferences/adjudicate.html",
        {
            "is_party": any(j.annotator_id == request.user.pk for j in judgements),
            "posted_winner": posted.get("winner", ""),
            "posted_note": posted.get("note", ""),
            "project": item.project,
            "adjudication": adjudication,
            "item": item,
            "candidates": [
                {"number": i + 1, "html": render_markdown(c["content"]), "rank": posted.get(f"rank_{i + 1}", "")}
                for i, c in enumerate(item.candidates)
            ],
            "judgements": [(j, results.describe_result(j.result)) for j in judgements],
            "ranked": ranked,
            "rank_options": range(1, len(item.candidates) + 1),
            "error": error,
        },
        status=400 if error else 200,
    )


@login_required
@require_GET
def quality(request: HttpRequest, pk: int) -> HttpResponse:
    """Agreement, position bias, win rates and annotator quality, for reviewers and data leads."""
    project = get_project_for_quality(request.user, pk)
    positions = selectors.decisive_positions(project)  # read once: the figures and the chart both count them
    return render(
        request,
        "preferences/quality.html",
        {
            "project": project,
            "snapshot": selectors.latest_agreement(project),
            "agreement_pending": services.agreement_pending(project),
            "bias": selectors.position_bias_for(project, positions),
            "win_rates": selectors.win_rates_for(project),
            "annotators": selectors.annotator_quality(project),
            "charts": charts.quality_charts(project, request_user(request), positions),
            "can_exclude": ProjectPerm.MANAGE_DATA in project_perms_for(request.user, project),
            "reward_models": figures_of("reward_models", project.pk),
        },
    )


@login_required
@require_POST
def agreement_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask a worker to recompute the agreement figures now (data leads and project admins)."""
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    try:
        services.agreement_recompute_request(actor=request_user(request), project=project)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "A worker is recomputing the agreement figures; reload in a moment.")
    return redirect("preference_quality", pk=pk)


@login_required
@require_POST
def annotator_exclude(request: HttpRequest, pk: int, user_pk: int) -> HttpResponse:
    """Exclude an annotator's judgements from releases, or take them back in (data leads)."""
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    quality = AnnotatorQuality.objects.filter(project=project, annotator_id=user_pk).select_related("annotator").first()
    if quality is None:
        raise Http404("No such annotator in this project.")
    excluded = request.POST.get("excluded") == "1"
    services.annotator_set_excluded(actor=request_user(request), quality=quality, excluded=excluded)
    verb = "excluded from" if excluded else "included in"
    messages.success(request, f"Judgements of {quality.annotator.username} are {verb} releases.")
    return redirect("preference_quality", pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def preference_settings(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    form = PreferenceSettingsForm(request.POST or None, instance_settings=selectors.preference_settings(project))
    if request.method == "POST" and form.is_valid():
        try:
            services.preference_settings_update(actor=request_user(request), project=project, **form.values())
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, "Comparison settings saved.")
            return redirect("preference_settings", pk=pk)
    return render(
        request, "preferences/settings.html", {"project": project, "form": form}, status=400 if form.errors else 200
    )
