"""htmx pages of the annotation app: labeling (the workspace, drafts, submit, skip) and the project dashboard.

The data lead's pages live in ``views_setup.py``, the reviewer's in ``views_review.py``."""

import difflib
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, project_perms_for, request_user
from accounts.selectors import role_in_project
from annotation import queue_left, selectors, services
from annotation.models import Annotation, AnnotationState, Flag, Item, Slot, SlotState
from annotation.permissions import get_item_for_user
from annotation.rendering import render_markdown
from annotation.rubrics import Criterion, parse_criteria
from core.errors import DomainError
from core.figures import figures_of
from core.http import is_htmx, parse_count, render_work


def response_diff(original: str | None, edited: str) -> SafeString:
    """A word-level diff of the annotator's ideal response against the model's, escaped piece by piece."""
    if not original:
        return mark_safe("")
    before, after = original.split(" "), edited.split(" ")
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if op in {"delete", "replace"}:
            parts.append(f"<del>{escape(' '.join(before[i1:i2]))}</del>")
        if op in {"insert", "replace"}:
            parts.append(f"<ins>{escape(' '.join(after[j1:j2]))}</ins>")
        if op == "equal":
            parts.append(str(escape(" ".join(before[i1:i2]))))
    return mark_safe(" ".join(parts))  # noqa: S308 - every piece escaped above


def _workspace_context(request: HttpRequest, item: Item, *, revising: Annotation | None = None) -> dict[str, Any]:
    user = request_user(request)
    rubric = selectors.current_rubric(item.project)
    criteria: list[Criterion] = parse_criteria(rubric.criteria) if rubric else []
    draft = selectors.draft_for(user, item)
    if draft is not None:
        data = draft.data
        time_spent = draft.time_spent_ms
    elif revising is not None:
        data = {
            "response": revising.response,
            "scores": revising.scores,
            "flags": revising.flags,
            "note": revising.note,
        }
        time_spent = revising.time_spent_ms
    else:
        data = {"response": item.response or "", "scores": {}, "flags": [], "note": ""}
        time_spent = 0
    scores = data.get("scores", {})
    return {
        "project": item.project,
        "item": item,
        "rubric": rubric,
        "criteria": [{"c": c, "value": scores.get(c.key, "")} for c in criteria],
        "top_key": min(9, max((len(c.options) for c in criteria), default=0)),
        "data": data,
        "flags": [(value, label, value in data.get("flags", [])) for value, label in Flag.choices],
        "time_spent_ms": time_spent,
        "submit_key": uuid.uuid4().hex,
        "page_token": services.draft_page_token(),
        "diff": response_diff(item.response, data.get("response", "")),
        "revising": revising,
        "draft_restored": draft is not None,
        "review": revising.reviews.first() if revising else None,
        "guidelines": render_markdown(rubric.guidelines) if rubric else "",
    }


_AFTER = {
    "saved": "Submitted. Here is the next one.",
    "skipped": "Skipped. It comes back to you once nothing else is left.",
}


def _next_workspace(
    request: HttpRequest, project_pk: int, *, notice: str = "", warn: bool = False, after: str = "", skipped: int = 0
) -> HttpResponse:
    """The next item, or the "nothing left" section (which says after a submit that it was the last one, and
    where the rest of the work went); ``after`` is "saved" or "skipped" (the item ``skipped``)."""
    project = get_project_for_user(request.user, project_pk, ProjectPerm.ANNOTATE)
    user = request_user(request)
    slot: Slot | None = services.item_next(user=user, project=project)
    if slot is None:
        left = queue_left.left_for(user, project, kind="sft")
        context = {"project": project, "sent_back": selectors.sent_back_to(user, project), "left": left}
    else:
        context = _workspace_context(request, slot.item)
        if after == "skipped" and slot.item_id == skipped:
            notice = notice or "Skipped, but nothing else is left for you, so here it is again."
        notice = notice or _AFTER.get(after, "")
    context.update(notice=notice, notice_warn=warn, after=after)
    template = "annotation/_workspace.html" if slot is not None else "annotation/_queue_empty.html"
    push_url = reverse("annotate_item", args=[project.pk, slot.item_id]) if slot is not None else None
    return render_work(request, page="annotation/label.html", fragment=template, context=context, push_url=push_url)


@login_required
@require_GET
def annotate(request: HttpRequest, pk: int) -> HttpResponse:
    return _next_workspace(request, pk)


@login_required
@require_GET
def annotate_item(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """A specific item: the one the user holds (resume) or one sent back to them (revise)."""
    item = get_item_for_user(request.user, pk, item_pk)
    user = request_user(request)
    own = selectors.own_annotation(user, item)
    holds = item.slots.filter(user=user, state=SlotState.LEASED).exists()
    if own is not None and own.state == AnnotationState.REJECTED:
        context = _workspace_context(request, item, revising=own)
    elif holds:
        context = _workspace_context(request, item)
    else:
        why = f"You submitted item #{item.pk} already" if own is not None else "That item is not assigned to you"
        messages.info(request, f"{why}; here is your next one.")
        return redirect("annotate", pk=pk)
    return render(request, "annotation/label.html", {**context, "workspace_template": "annotation/_workspace.html"})


def _posted_work(request: HttpRequest) -> dict[str, Any]:
    scores = {key[len("score_") :]: value for key, value in request.POST.items() if key.startswith("score_") and value}
    return {
        "response": request.POST.get("response", ""),
        "scores": scores,
        "flags": [f for f in request.POST.getlist("flags") if f in Flag.values],
        "note": request.POST.get("note", ""),
    }


def _time_spent(request: HttpRequest) -> int:
    return parse_count(request.POST.get("time_spent_ms"))


@login_required
@require_POST
def draft_save(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    item = get_item_for_user(request.user, pk, item_pk)
    work = _posted_work(request)
    try:
        draft = services.draft_save(
            user=request_user(request), item=item, data=work, time_spent_ms=_time_spent(request),
            page=request.POST.get("page", ""),
        )  # fmt: skip
    except DomainError as exc:
        return render(request, "_draft_refused.html", {"message": exc.message})
    if draft is None:
        return HttpResponse('<span id="draft-status" class="muted small">Already submitted</span>')
    if not selectors.holds_item(request_user(request), item):
        return render(request, "_draft_lost.html")
    return render(
        request,
        "annotation/_draft_saved.html",
        {"draft": draft, "diff": response_diff(item.response, work["response"]), "item": item},
    )


@login_required
@require_POST
def submit(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    item = get_item_for_user(request.user, pk, item_pk)
    work = _posted_work(request)
    try:
        services.annotation_submit(
            user=request_user(request),
            item=item,
            time_spent_ms=_time_spent(request),
            submit_key=request.POST.get("submit_key", ""),
            **work,
        )
    except DomainError as exc:
        if exc.conflict:  # submitted before (the page came back with Back): say so and move on
            return _next_workspace(request, pk, notice=exc.message, warn=True)
        # Keep everything typed so far: save it as the draft and show the form again with the reason.
        services.draft_save(user=request_user(request), item=item, data=work, time_spent_ms=_time_spent(request))
        context = {**_workspace_context(request, item), "error": exc.message}
        own = selectors.own_annotation(request_user(request), item)
        if own is not None and own.state == AnnotationState.REJECTED:
            context = {**_workspace_context(request, item, revising=own), "error": exc.message}
        if is_htmx(request):
            return render(request, "annotation/_workspace.html", context)
        context["workspace_template"] = "annotation/_workspace.html"
        return render(request, "annotation/label.html", context, status=422)
    return _next_workspace(request, pk, after="saved")


@login_required
@require_POST
def skip(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    item = get_item_for_user(request.user, pk, item_pk)
    try:
        services.item_skip(user=request_user(request), item=item)
    except DomainError as exc:
        return _next_workspace(request, pk, notice=exc.message)
    return _next_workspace(request, pk, after="skipped", skipped=item.pk)


@login_required
@require_GET
def project_dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    granted = project_perms_for(request.user, project)
    can = {perm: perm in granted for perm in ProjectPerm.ALL}
    kinds = selectors.work_kinds(project)
    return render(
        request,
        "annotation/dashboard.html",
        {
            "project": project,
            "role": role_in_project(request.user, project),
            "can": can,
            "can_manage_members": can[ProjectPerm.MANAGE_MEMBERS],
            "can_view_audit": can[ProjectPerm.VIEW_AUDIT],
            "stats": selectors.project_dashboard(project),
            "open_slots": queue_left.open_slots(project),
            # What the project holds decides the buttons and counts, as it decides its tabs.
            "sft": "sft" in kinds,
            "comparisons": "comparison" in kinds,
            # A higher floor's mark (releases: eval-set drift), for those who read releases.
            "drift_flags": figures_of("eval_drift", project.pk)
            if can[ProjectPerm.MANAGE_DATA] or can[ProjectPerm.RUN_TRAINING]
            else [],
            "sent_back": selectors.sent_back_to(request_user(request), project)[:20]
            if can[ProjectPerm.ANNOTATE]
            else [],
        },
    )
