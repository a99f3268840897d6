"""The reviewer's htmx pages: the review queue and one annotation's review (approve, send back, edit)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user
from annotation import selectors, services
from annotation.models import AnnotationState, ReviewDecision
from annotation.permissions import get_annotation_for_reviewer
from annotation.rubrics import parse_criteria
from annotation.views import response_diff
from core.errors import DomainError


@login_required
@require_GET
def review_queue(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.REVIEW)
    page = Paginator(selectors.review_queue(project, request_user(request)), 50).get_page(request.GET.get("page"))
    return render(request, "annotation/review_queue.html", {"project": project, "page": page})


_REVIEW_DONE = {
    ReviewDecision.APPROVE: "approved",
    ReviewDecision.REJECT: "sent back to them",
    ReviewDecision.EDIT_APPROVE: "approved with your edit",
}


@login_required
@require_http_methods(["GET", "POST"])
def review(request: HttpRequest, pk: int, annotation_pk: int) -> HttpResponse:
    annotation = get_annotation_for_reviewer(request.user, pk, annotation_pk)
    error = ""
    if request.method == "POST":
        decision = request.POST.get("decision", "")
        edited_scores = {
            key[len("score_") :]: value for key, value in request.POST.items() if key.startswith("score_") and value
        }
        try:
            services.annotation_review(
                reviewer=request_user(request),
                annotation=annotation,
                decision=decision,
                comment=request.POST.get("comment", ""),
                edited_response=request.POST.get("edited_response"),
                edited_scores=edited_scores or None,
            )
        except DomainError as exc:
            error = exc.message
        else:
            done = _REVIEW_DONE[ReviewDecision(decision)]
            messages.success(request, f"Annotation #{annotation.pk} by {annotation.annotator.username} {done}.")
            following = selectors.review_queue(annotation.item.project, request_user(request)).first()
            if following is not None:
                return redirect("review", pk=pk, annotation_pk=following.pk)
            return redirect("review_queue", pk=pk)
    criteria = parse_criteria(annotation.rubric_version.criteria)
    own = annotation.annotator_id == request.user.pk
    return render(
        request,
        "annotation/review.html",
        {
            "project": annotation.item.project,
            "heading": f"Review annotation #{annotation.pk}",
            "annotation": annotation,
            "item": annotation.item,
            "criteria": [{"c": c, "value": annotation.scores.get(c.key, "")} for c in criteria],
            "diff": response_diff(annotation.original_response, annotation.response),
            "error": error,
            "own": own,
            "reviewable": annotation.state == AnnotationState.SUBMITTED and not own,
            "last_review": annotation.reviews.select_related("reviewer").order_by("-created_at").first(),
        },
        status=400 if error else 200,
    )
