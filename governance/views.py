"""htmx pages of the governance app: an adapter's dossier downloaded as a zip (the button on its lineage page) and
the site staff's page of the dossier signing key; erasure search and preview (POST, so the term never reaches an
address or an access log), erase with a reason, an erasure's report with its taints, the rebuild of a tainted
release, and a project's retention policy."""

import uuid
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import request_user, require_site_staff
from core.errors import DomainError
from governance import selectors, services
from governance.matching import MAX_TERM, Matcher
from governance.models import MatchMode
from governance.permissions import (
    get_adapter_for_dossier,
    get_erasure_for_user,
    get_project_for_retention,
    get_release_for_rebuild,
    require_erasure_rights,
)
from governance.retention import policy_for
from governance.signing import key_path, signing_key


@login_required
@require_POST
def adapter_dossier(request: HttpRequest, pk: int, adapter_pk: int) -> HttpResponseBase:
    adapter = get_adapter_for_dossier(request.user, pk, adapter_pk)
    try:
        archive = services.dossier_zip(actor=request_user(request), adapter=adapter)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("adapter", pk=pk, adapter_pk=adapter_pk)
    return zip_response(archive, f"dossier-adapter-{adapter.pk}.zip")


def zip_response(archive: Path, filename: str) -> FileResponse:
    """Stream the zip and delete it once sent (it was made for this one download)."""
    stream = archive.open("rb")
    archive.unlink()  # the open handle keeps the bytes until the response closes it
    return FileResponse(stream, as_attachment=True, filename=filename, content_type="application/zip")


@login_required
@require_GET
def signing_key_page(request: HttpRequest) -> HttpResponse:
    require_site_staff(request.user)
    problem = ""
    key = None
    try:
        # Made here when missing, so the fingerprint can be handed to auditors before the first export.
        key = signing_key(actor=request_user(request))
    except DomainError as exc:
        problem = exc.message
    return render(
        request,
        "governance/signing_key.html",
        {
            "heading": "Dossier signing key",
            "key": key,
            "public_pem": key.public_pem.decode() if key else "",
            "path": key_path(),
            "problem": problem,
        },
    )


PREVIEW_ROWS = 500


def _form_context(mode: str = MatchMode.EXACT, term: str = "", error: str = "") -> dict[str, object]:
    return {"modes": MatchMode.choices, "mode": mode, "term": term, "error": error, "max_term": MAX_TERM}


@login_required
@require_GET
def erasure_list(request: HttpRequest) -> HttpResponse:
    require_erasure_rights(request.user)
    context = _form_context() | {"erasures": selectors.erasures_for_user(request.user)[:100]}
    return render(request, "governance/erasures.html", context)


@login_required
@require_POST
def erasure_preview(request: HttpRequest) -> HttpResponse:
    project_ids = require_erasure_rights(request.user)
    mode, term = request.POST.get("mode", ""), request.POST.get("term", "")
    try:
        preview = services.erasure_preview(matcher=Matcher.checked(mode, term), project_ids=project_ids)
    except DomainError as exc:
        context = _form_context(mode, term, exc.message) | {"erasures": selectors.erasures_for_user(request.user)[:100]}
        return render(request, "governance/erasures.html", context, status=400)
    context = _form_context(mode, term) | {
        "preview": preview,
        "hits": [
            (preview.projects.get(hit.project_id, hit.project_id), hit) for hit in preview.found.hits[:PREVIEW_ROWS]
        ],
        "more": max(0, len(preview.found.hits) - PREVIEW_ROWS),
        "request_key": uuid.uuid4().hex,
    }
    return render(request, "governance/preview.html", context)


@login_required
@require_POST
def erasure_erase(request: HttpRequest) -> HttpResponse:
    project_ids = require_erasure_rights(request.user)
    mode, term = request.POST.get("mode", ""), request.POST.get("term", "")
    try:
        erasure = services.erasure_erase(
            actor=request_user(request), mode=mode, term=term, reason=request.POST.get("reason", ""),
            request_key=request.POST.get("request_key", ""), project_ids=project_ids,
        )  # fmt: skip
    except DomainError as exc:
        context = _form_context(mode, term, exc.message) | {"erasures": selectors.erasures_for_user(request.user)[:100]}
        return render(request, "governance/erasures.html", context, status=400)
    if erasure.failure:
        messages.error(request, f"The database is erased, but files could not be rewritten: {erasure.failure}")
    else:
        messages.success(request, f"Erased {erasure.matches} matches.")
    return redirect("erasure_detail", erasure_pk=erasure.pk)


@login_required
@require_GET
def erasure_detail(request: HttpRequest, erasure_pk: int) -> HttpResponse:
    erasure = get_erasure_for_user(request.user, erasure_pk)
    context = {"erasure": erasure, "taints": selectors.taints_of(erasure), "projects": erasure.projects.all()}
    return render(request, "governance/erasure.html", context)


@login_required
@require_POST
def release_rebuild_without_erased(request: HttpRequest, pk: int, release_pk: int) -> HttpResponse:
    release = get_release_for_rebuild(request.user, pk, release_pk)
    try:
        rebuilt = services.erasure_release_rebuild(actor=request_user(request), release=release)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("release_detail", pk=pk, release_pk=release.pk)
    messages.success(request, f"{rebuilt} is queued: the same recipe without the erased items.")
    return redirect("release_detail", pk=pk, release_pk=rebuilt.pk)


@login_required
@require_http_methods(["GET", "POST"])
def retention(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_retention(request.user, pk)
    policy, error = policy_for(project), None
    if request.method == "POST":
        values = {name: request.POST.get(name, "").strip() for name in services.RETENTION_FIELDS}
        try:
            policy = services.retention_policy_update(actor=request_user(request), project=project, values=values)
        except DomainError as exc:
            error = exc
        else:
            messages.success(request, "Retention saved; the next sweep applies it.")
            return redirect("retention", pk=project.pk)
    context = {"project": project, "policy": policy, "error": error}
    return render(request, "governance/retention.html", context, status=400 if error else 200)
