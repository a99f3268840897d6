"""The data lead's htmx pages: imports and their progress, the rubric, annotation settings, items on hold."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user, user_has_project_perm
from annotation import selectors, services
from annotation.forms import AnnotationSettingsForm, ImportForm, RubricForm, criteria_from_post
from annotation.models import ImportStatus, RubricVersion
from annotation.parsing import ImportFormat
from annotation.peer_mapping import needs_fields
from annotation.permissions import get_batch_for_user, get_item_for_user
from annotation.rendering import render_markdown
from annotation.rubrics import SCALES, parse_criteria
from core.errors import DomainError
from core.http import is_htmx


@login_required
@require_http_methods(["GET", "POST"])
def imports(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    form = ImportForm(request.POST or None, request.FILES or None, project=project)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        mapping = None
        if form.cleaned_data["fmt"] == ImportFormat.CSV:
            mapping = {  # the CSV fields exist where CSV is offered
                "prompt": form.cleaned_data["csv_prompt"],
                "response": form.cleaned_data["csv_response"],
                "system": form.cleaned_data["csv_system"],
                "id": form.cleaned_data["csv_id"],
                "metadata": [c.strip() for c in form.cleaned_data["csv_metadata"].split(",") if c.strip()],
            }
        try:
            services.import_format_check(project=project, fmt=form.cleaned_data["fmt"])
            batch = services.import_start(
                actor=request_user(request),
                project=project,
                upload=upload,
                source_name=upload.name,
                fmt=form.cleaned_data["fmt"],
                csv_mapping=mapping,
                skip_bad_lines=form.cleaned_data["skip_bad_lines"],
                purpose=form.cleaned_data["purpose"] or "annotation",
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return redirect("import_detail", pk=pk, batch_pk=batch.pk)
    return render(
        request,
        "annotation/imports.html",
        {
            "project": project,
            "form": form,
            "fieldsets": form.fieldsets(),
            "batches": selectors.import_batches(project)[:50],
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_GET
def import_detail(request: HttpRequest, pk: int, batch_pk: int) -> HttpResponse:
    batch = get_batch_for_user(request.user, pk, batch_pk)
    progress = selectors.import_progress(batch)
    context = {"project": batch.project, "batch": batch, "progress": progress, "heading": f"Import #{batch.pk}"}
    if batch.status == ImportStatus.MAPPING:
        context["members"] = selectors.mapping_members(batch.project)
        context["needs_fields"] = needs_fields(batch.fmt)
    if is_htmx(request):
        return render(request, "annotation/_import_status.html", context)
    return render(request, "annotation/import_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def rubric(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.VIEW)
    can_edit = user_has_project_perm(request.user, project, ProjectPerm.MANAGE_DATA)
    current = selectors.current_rubric(project)
    form = None
    rows: list[dict[str, Any]] = list(current.criteria) if current else []
    if can_edit:
        form = RubricForm(request.POST or None, initial={"guidelines": current.guidelines if current else ""})
        if request.method == "POST":
            rows = criteria_from_post(request.POST)
            if form.is_valid():
                try:
                    saved = services.rubric_save(
                        actor=request_user(request),
                        project=project,
                        guidelines=form.cleaned_data["guidelines"],
                        criteria=rows,
                    )
                except DomainError as exc:
                    form.add_error(None, exc.message)
                else:
                    messages.success(request, f"Rubric saved as version {saved.version}.")
                    return redirect("rubric", pk=pk)
    elif request.method == "POST":
        get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)  # 404 for read-only roles
    return render(
        request,
        "annotation/rubric.html",
        {
            "project": project,
            "rubric": current,
            "criteria": parse_criteria(current.criteria) if current else [],
            "guidelines": render_markdown(current.guidelines) if current else "",
            "form": form,
            "scales": SCALES,
            "rows": [*rows, *({} for _ in range(2))],  # two blank rows to add criteria
            "versions": RubricVersion.objects.filter(project=project)[:20],
        },
        status=400 if form is not None and form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def annotation_settings(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    current = selectors.annotation_settings(project)
    form = AnnotationSettingsForm(request.POST or None, instance_settings=current)
    if request.method == "POST" and form.is_valid():
        try:
            services.annotation_settings_update(actor=request_user(request), project=project, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, "Settings saved.")
            return redirect("annotation_settings", pk=pk)
    return render(
        request, "annotation/settings.html", {"project": project, "form": form}, status=400 if form.errors else 200
    )


@login_required
@require_http_methods(["GET", "POST"])
def on_hold(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
    if request.method == "POST":
        item = get_item_for_user(request.user, pk, int(request.POST.get("item", "0") or 0), ProjectPerm.MANAGE_DATA)
        try:
            services.item_release_hold(actor=request_user(request), item=item, redact=request.POST.get("redact", ""))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Item #{item.pk} is back in the queue.")
        return redirect("on_hold", pk=pk)
    return render(request, "annotation/on_hold.html", {"project": project, "items": selectors.items_on_hold(project)})
