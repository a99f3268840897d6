"""The API of the governance app: export an adapter's signed dossier."""

from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.permissions import request_user
from governance import services
from governance.permissions import get_adapter_for_dossier
from governance.views import zip_response


class AdapterDossierView(APIView):
    @extend_schema(
        request=None,
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The dossier as a zip: one folder dossier-adapter-<id>/ with dossier.html, dossier.pdf, "
                "dossier.json, every file it cites, manifest.json, manifest.sig, public_key.pem and "
                "verify_dossier.py (run it with Python and the cryptography package).",
            ),
            404: OpenApiResponse(description="No such adapter, or not a project admin (view_project_audit) or staff."),
        },
        summary="Export an adapter's signed dossier (EU AI Act Art. 10(2) and 12); the export is audited",
    )
    def post(self, request: Request, pk: int, adapter_pk: int) -> HttpResponseBase:
        adapter = get_adapter_for_dossier(request.user, pk, adapter_pk)
        archive = services.dossier_zip(actor=request_user(request), adapter=adapter)
        return zip_response(archive, f"dossier-adapter-{adapter.pk}.zip")
