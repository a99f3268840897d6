"""Releases on an S3-compatible artifact store through django-storages: an S3 protocol server on
loopback (moto's standalone server, ``tests/s3.py``) stands in for the bucket."""

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from core.storage import artifact_storage
from releases import services
from tests.conftest import ClientFor, Personas
from tests.releases.helpers import build
from tests.releases.test_build import PROMPTS, judged
from tests.releases.test_pages import body
from tests.s3 import s3_server


@pytest.fixture
def s3_bucket() -> Iterator[dict[str, Any]]:
    with s3_server() as options:
        yield options


def test_it_stores_verifies_and_downloads_a_release_from_s3(
    personas: Personas, client_for: ClientFor, s3_bucket: dict[str, Any], settings: Any
) -> None:
    from storages.backends.s3 import S3Storage

    judged(personas, PROMPTS[:6])
    storages = {**settings.STORAGES, "artifacts": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3_bucket}}
    with override_settings(STORAGES=storages):
        assert isinstance(artifact_storage(), S3Storage)
        release = build(personas.project, personas.data_lead)
        assert release.state == "built", release.failure_reason
        assert services.release_verify(release=release) == []
        found = release.files.get(path="trl_preference/train.jsonl")
        assert artifact_storage().exists(found.storage_name)
        response = client_for(personas.data_lead).get(
            f"/projects/{personas.project.pk}/releases/{release.pk}/files/{found.pk}/"
        )
        assert hashlib.sha256(body(response)).hexdigest() == found.sha256
        services.release_delete(actor=personas.project_admin, release=release, reason="end of the check")
