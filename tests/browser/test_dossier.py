"""Site staff press *Export dossier* on an adapter's page and get the signed zip, which the bundle's own script
verifies in an isolated Python."""

import zipfile
from pathlib import Path

import pytest

from accounts.models import AuditEvent
from tests.access_matrix import matrix_adapter
from tests.browser.conftest import log_in
from tests.conftest import make_personas
from tests.governance.test_dossier import standalone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_downloads_a_dossier_from_the_adapter_page_that_verifies(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    adapter = matrix_adapter(personas)
    log_in(page, "staff")
    page.goto(f"/projects/{personas.project.pk}/adapters/{adapter}/")
    with page.expect_download() as download:
        page.click("#export-dossier")
    assert download.value.suggested_filename == f"dossier-adapter-{adapter}.zip"
    archive = tmp_path / "dossier.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(archive) as packed:
        packed.extractall(tmp_path)
    folder = tmp_path / f"dossier-adapter-{adapter}"
    result = standalone(folder, script=folder / "verify_dossier.py")
    assert result.returncode == 0, result.stdout
    assert AuditEvent.objects.get(action="dossier.export").actor == personas.staff
