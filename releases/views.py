"""htmx pages of the releases app: list and define, a release with its build progress, files and
datasheet, downloads, the diff between two releases, and the admin's delete."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, project_perms_for, request_user
from annotation.rendering import render_markdown
from annotation.selectors import default_release_kind
from core.errors import DomainError
from core.http import parse_id
from core.storage import artifact_storage
from releases import selectors, services
from releases.datasheet_markdown import markdown
from releases.exporters import FORMAT_LABELS
from releases.forms import ReleaseForm
from releases.models import Release, ReleaseFile, ReleaseState
from releases.permissions import (
    get_project_for_releases,
    get_release_file_for_user,
    get_release_for_admin,
    get_release_for_user,
)
from releases.recipe import describe


@login_required
@require_GET
def release_list(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_releases(request.user, pk)
    perms = project_perms_for(request.user, project)
    return render(
        request,
        "releases/list.html",
        {
            "project": project,
            "releases": selectors.releases_of(project),
            "can_build": ProjectPerm.MANAGE_DATA in perms,
            "drift_flags": selectors.drift_badge(project.pk),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def release_new(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    initial: dict[str, Any] = {"kind": default_release_kind(project)}
    source = parse_id(request.GET.get("from"))
    if source is not None:
        earlier = Release.objects.filter(project=project, pk=source).first()
        if earlier is not None:
            initial = ReleaseForm.initial_from(earlier.recipe, earlier.name) | {"assumptions": earlier.assumptions}
    form = ReleaseForm(request.POST or None, project=project, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            release = services.release_create(
                actor=request_user(request),
                project=project,
                name=form.cleaned_data["name"],
                recipe=form.recipe(),
                assumptions=form.cleaned_data["assumptions"],
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"{release} is queued; a worker builds it now.")
            return redirect("release_detail", pk=pk, release_pk=release.pk)
    context = {"project": project, "form": form, "fieldsets": form.fieldsets()}
    return render(request, "releases/new.html", context, status=400 if form.errors else 200)


def _detail_context(request: HttpRequest, release: Release) -> dict[str, Any]:
    perms = project_perms_for(request.user, release.project)
    files = list(release.files.all()) if release.state in (ReleaseState.BUILT, ReleaseState.DELETED) else []
    previous = selectors.previous_release(release) if release.state == ReleaseState.BUILT else None
    return {
        "project": release.project,
        "release": release,
        "files": [(f, FORMAT_LABELS.get(f.fmt, f.fmt)) for f in files],
        "previous": previous,
        "datasheet_html": render_markdown(markdown(release.manifest, release.datasheet))
        if release.state == ReleaseState.BUILT and release.manifest and release.datasheet
        else "",
        "can_build": ProjectPerm.MANAGE_DATA in perms,
        "can_delete": ProjectPerm.MANAGE_MEMBERS in perms,
        "building": release.state in (ReleaseState.QUEUED, ReleaseState.BUILDING),
        "others": selectors.built_releases(release.project).exclude(pk=release.pk),
        "recipe_rows": describe(release.recipe or {}),
        "drift_flags": selectors.drift_badge(release.project_id),
    }


@login_required
@require_GET
def release_detail(request: HttpRequest, pk: int, release_pk: int) -> HttpResponse:
    release = get_release_for_user(request.user, pk, release_pk)
    context = _detail_context(request, release)
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "progress":
        if context["building"]:
            return render(request, "releases/_progress.html", context)
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"  # built or failed: show the whole page
        return response
    return render(request, "releases/detail.html", context)


@login_required
@require_GET
def release_file_download(request: HttpRequest, pk: int, release_pk: int, file_pk: int) -> HttpResponseBase:
    """Stream one file of a built release; the ETag is its sha256, so a client can check and cache it."""
    found = get_release_file_for_user(request.user, pk, release_pk, file_pk)
    return stream_release_file(request, found, via="web")


def stream_release_file(request: HttpRequest, found: ReleaseFile, *, via: str) -> HttpResponseBase:
    """The file's bytes (or "not modified" for a client holding them); a download is audited (``via``: "web" or
    "api") once the file is open, so a file missing from the store records nothing."""
    if found.release.state != ReleaseState.BUILT:
        raise Http404("This release has no files.")
    etag = f'"{found.sha256}"'
    response: HttpResponseBase
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponseNotModified()
    else:
        stream = artifact_storage().open(found.storage_name, "rb")
        try:
            services.release_file_download(actor=request_user(request), found=found, via=via)
        except BaseException:
            stream.close()
            raise
        # No spaces or odd characters in a name that lands in a shell: "Retail DPO" → "retail-dpo-v2-…"
        name = slugify(found.release.name) or "release"
        filename = f"{name}-v{found.release.version}-{found.path.replace('/', '-')}"
        # Bytes to save, whatever the name says; the datasheet's Markdown is the one file also read as text.
        kind = "text/markdown; charset=utf-8" if found.path.endswith(".md") else "application/octet-stream"
        response = FileResponse(stream, as_attachment=True, filename=filename, content_type=kind)
        response["Content-Length"] = str(found.size_bytes)
        response["X-Content-SHA256"] = found.sha256
    response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@login_required
@require_GET
def release_diff(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_releases(request.user, pk)
    built = selectors.built_releases(project)
    chosen: dict[str, Release | None] = {}
    problems = []
    for side, label in (("a", "From"), ("b", "To")):
        raw = request.GET.get(side, "").strip()
        chosen[side] = selectors.built_release(project, raw)
        if raw and chosen[side] is None:
            problems.append(f"{label}: “{raw[:20]}” is not a built release of this project.")
    a, b = chosen["a"], chosen["b"]
    if a is not None and a == b:
        problems.append("Choose two different releases.")
    diff = selectors.release_diff(a, b) if a and b and not problems else None
    if request.GET.get("format") == "json":
        if diff is None:
            detail = " ".join(problems) or "Choose two built releases of this project: ?a=ID&b=ID."
            return JsonResponse({"detail": detail}, status=400)
        return JsonResponse(diff)
    if not request.GET and len(built) >= 2:
        b, a = built[0], built[1]  # nothing chosen yet: offer the newest against the one before
    context: dict[str, Any] = {"project": project, "releases": built, "a": a, "b": b, "diff": diff}
    context["problems"] = problems
    if diff is not None:
        context["counts"] = [(DIFF_LABELS[k], v, k == "eval_to_train" and v > 0) for k, v in diff["counts"].items()]
        context["examples"] = [(DIFF_LABELS[k], rows) for k, rows in diff["examples"].items()]
    return render(request, "releases/diff.html", context, status=400 if problems else 200)


DIFF_LABELS = {
    "added": "items added",
    "removed": "items removed",
    "changed": "items changed",
    "unchanged": "unchanged",
    "flips": "preference flips",
    "train_to_eval": "train → eval",
    "eval_to_train": "eval → train",
}


@login_required
@require_POST
def release_delete(request: HttpRequest, pk: int, release_pk: int) -> HttpResponse:
    release = get_release_for_admin(request.user, pk, release_pk)
    try:
        services.release_delete(actor=request_user(request), release=release, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        kept = f"the hash {release.hash[:16]}…" if release.hash else "the recipe."  # "…" ends the sentence
        messages.success(request, f"{release} is deleted; its tombstone keeps {kept}")
    return redirect("release_detail", pk=pk, release_pk=release_pk)
