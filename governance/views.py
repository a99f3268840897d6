"""Pages of the governance app: an adapter's dossier downloaded as a zip (the button on its lineage page) and the
site staff's page of the dossier signing key."""

from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import request_user, require_site_staff
from core.errors import DomainError
from governance import services
from governance.permissions import get_adapter_for_dossier
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
