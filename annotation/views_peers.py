"""The mapping step of a peer tool's import (Label Studio, Argilla, OpenAssistant): which fields hold what and
who each of its annotators is, confirmed by the data lead before anything is imported; or the import cancelled."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts.permissions import request_user
from annotation import services
from annotation.models import ImportBatch
from annotation.peer_mapping import needs_fields
from annotation.permissions import get_batch_for_user
from core.errors import DomainError


def mapping_from_post(batch: ImportBatch, data: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The mapping form's fields: ``prompt``, ``candidates`` (comma-separated, in order), ``response``, and one
    ``annotator-<n>`` per annotator of the scan (a member's id, "new" or "skip")."""
    fields = None
    if needs_fields(batch.fmt):
        fields = {
            "prompt": data.get("prompt", ""),
            "candidates": [c.strip() for c in data.get("candidates", "").split(",") if c.strip()],
            "response": data.get("response", ""),
        }
    annotators = {}
    for n, seen in enumerate((batch.peer_scan or {}).get("annotators", [])):
        choice = data.get(f"annotator-{n}", "")
        if choice:
            annotators[seen["key"]] = choice
    return fields, annotators


@login_required
@require_POST
def import_mapping(request: HttpRequest, pk: int, batch_pk: int) -> HttpResponse:
    batch = get_batch_for_user(request.user, pk, batch_pk)
    fields, annotators = mapping_from_post(batch, request.POST)
    try:
        services.import_mapping_confirm(actor=request_user(request), batch=batch, fields=fields, annotators=annotators)
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("import_detail", pk=pk, batch_pk=batch.pk)


@login_required
@require_POST
def import_cancel(request: HttpRequest, pk: int, batch_pk: int) -> HttpResponse:
    batch = get_batch_for_user(request.user, pk, batch_pk)
    try:
        services.import_cancel(actor=request_user(request), batch=batch)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Import #{batch.pk} cancelled; its file is deleted.")
    return redirect("import_detail", pk=pk, batch_pk=batch.pk)
