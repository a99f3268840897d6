"""An adapter's files and lineage through the API, streamed as the adapter page serves them."""

import json

import pytest

from tests.access_matrix import matrix_adapter
from tests.conftest import ClientFor, Personas
from training import selectors
from training.models import Adapter

pytestmark = pytest.mark.django_db


def test_it_lists_and_streams_an_adapters_files_with_their_sha256(personas: Personas, client_for: ClientFor) -> None:
    adapter = Adapter.objects.get(pk=matrix_adapter(personas))
    base = f"/api/v1/projects/{personas.project.pk}/adapters/{adapter.pk}"
    lead = client_for(personas.data_lead)
    listed = lead.get(f"{base}/files/").json()
    assert listed["count"] == 1
    assert listed["results"] == [
        {"index": 0, "path": "adapter_model.safetensors", "size_bytes": 7, "sha256": "c" * 64,
         "download": f"{base}/files/0/"},
    ]  # fmt: skip
    response = lead.get(f"{base}/files/0/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"weights"  # type: ignore[attr-defined]
    assert response["ETag"] == f'"{"c" * 64}"'
    assert response["Content-Length"] == "7"
    assert "adapter_model.safetensors" in response["Content-Disposition"]
    cached = lead.get(f"{base}/files/0/", HTTP_IF_NONE_MATCH=f'"{"c" * 64}"')
    assert cached.status_code == 304
    assert lead.get(f"{base}/files/1/").status_code == 404
    assert lead.get(f"{base}/files/", {"path": "adapter_model.safetensors"}).status_code == 400  # only paging
    # The adapter page's link answers the same way (one code path).
    assert (
        lead.get(
            f"/projects/{personas.project.pk}/adapters/{adapter.pk}/files/0/", HTTP_IF_NONE_MATCH=f'"{"c" * 64}"'
        ).status_code
        == 304
    )


def test_it_downloads_the_lineage_json(personas: Personas, client_for: ClientFor) -> None:
    adapter = Adapter.objects.get(pk=matrix_adapter(personas))
    path = f"/api/v1/projects/{personas.project.pk}/adapters/{adapter.pk}/lineage/"
    response = client_for(personas.project_admin).get(path)
    assert response.status_code == 200
    assert json.loads(response.content) == json.loads(json.dumps(selectors.lineage(adapter), default=str))
    assert response["Content-Disposition"] == f'attachment; filename="adapter-{adapter.pk}-lineage.json"'
    assert client_for(personas.annotator).get(path).status_code == 404
    assert client_for(personas.outsider).get(path).status_code == 404
