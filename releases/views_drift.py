"""The eval-set drift page (under a project's Releases tab): the latest stored report of the project's current eval
set, or of one release's eval split, against the recent imports; its thresholds; a new report; “Refresh the eval
set”. Every figure comes from a ``DriftReport`` computed by a worker (``releases.drift``): no per-item work here."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Project, ProjectPerm
from accounts.permissions import get_project_for_user, project_perms_for, request_user
from core.errors import DomainError
from releases import drift, drift_refresh, selectors
from releases.forms import DriftSettingsForm
from releases.models import DriftReport, Release
from releases.permissions import get_project_for_releases

CHECK_LABELS = {"prompt length": "prompt length", "embedding centroid": "embedding centroid", "embedding MMD": "MMD"}


def drift_context(project: Project, release: Release | None) -> dict[str, Any]:
    """What the page (and its htmx refresh) shows: the latest report, one pending, the thresholds."""
    report = selectors.latest_drift_report(project.pk, release.pk if release else None)
    pending = selectors.pending_drift_report(project.pk, release.pk if release else None)
    if pending is not None and report is not None and pending.pk < report.pk:
        pending = None
    failed = selectors.failed_drift_report(project.pk, release.pk if release else None)
    return {
        "project": project,
        "release": release,
        "report": report,
        "pending": pending,
        "failed": failed if failed is not None and (report is None or failed.pk > report.pk) else None,
        "keys": _key_rows(report),
        "settings": drift.eval_health_settings(project),
    }


def _key_rows(report: DriftReport | None) -> list[dict[str, Any]]:
    if report is None:
        return []
    rows = [{"name": key, **figures} for key, figures in (report.result.get("keys") or {}).items()]
    return sorted(rows, key=lambda row: (not row.get("flagged"), row["name"]))


@login_required
@require_GET
def drift_page(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_releases(request.user, pk)
    release = selectors.built_release(project, request.GET.get("release")) if request.GET.get("release") else None
    context = drift_context(project, release)
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "pending":
        if context["pending"] is not None:
            return render(request, "releases/_drift_pending.html", context)
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"  # computed: show the whole page
        return response
    can_manage = ProjectPerm.MANAGE_DATA in project_perms_for(request.user, project)
    context |= {
        "can_manage": can_manage,
        "releases": selectors.built_releases(project),
        "form": DriftSettingsForm(initial=context["settings"].thresholds()) if can_manage else None,
    }
    return render(request, "releases/drift.html", context)


def _back(pk: int, release: Release | None) -> HttpResponse:
    url = reverse("release_drift", args=[pk])
    return redirect(f"{url}?release={release.pk}" if release else url)


@login_required
@require_POST
def drift_refresh_report(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    release = selectors.built_release(project, request.POST.get("release")) if request.POST.get("release") else None
    report = drift.drift_report_request(actor=request_user(request), project=project, release=release)
    messages.success(request, f"Drift report #{report.pk} is queued; a worker computes it now.")
    return _back(pk, release)


@login_required
@require_POST
def drift_settings(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    form = DriftSettingsForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Thresholds not saved: " + "; ".join(f"{k}: {v[0]}" for k, v in form.errors.items()))
        return _back(pk, None)
    drift.eval_health_settings_update(actor=request_user(request), project=project, values=form.cleaned_data)
    messages.success(request, "Thresholds saved; they apply from the next report.")
    return _back(pk, None)


@login_required
@require_POST
def drift_refresh_eval_set(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    try:
        release = drift_refresh.eval_set_refresh(actor=request_user(request), project=project)
    except DomainError as exc:
        messages.error(request, exc.message)
        return _back(pk, None)
    added = list(release.recipe.get("eval_items") or [])
    ready = drift_refresh.labelled(release.kind, added)
    messages.success(
        request,
        f"{release} is queued with {len(added)} recent item(s) named for its eval side; a worker builds it now. "
        f"{ready} of them are labelled; the others join the eval side when labelled and the release is rebuilt.",
    )
    return redirect("release_detail", pk=pk, release_pk=release.pk)
