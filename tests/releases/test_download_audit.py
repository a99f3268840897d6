"""Release downloads are audited: who, which release and file, in which format, when; one event each, none for
an answer "not modified"; and the audit page shows them as readable fields."""

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from tests.conftest import ClientFor, Personas
from tests.releases.helpers import build
from tests.releases.test_build import PROMPTS, judged

pytestmark = pytest.mark.django_db


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_it_audits_each_release_download_on_the_page_and_in_the_api(personas: Personas, client_for: ClientFor) -> None:
    judged(personas, PROMPTS[:6])
    release = build(personas.project, personas.data_lead)
    found = release.files.get(path="trl_preference/train.jsonl")
    client = client_for(personas.data_lead)
    downloads = AuditEvent.objects.filter(action="release.download").order_by("seq")
    url = f"/projects/{personas.project.pk}/releases/{release.pk}/files/{found.pk}/"
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
        assert hashlib.sha256(_body(response)).hexdigest() == found.sha256
    audit_statements = [q["sql"] for q in queries.captured_queries if "audit" in q["sql"].lower()]
    assert len(audit_statements) == 1, "one statement appends the one event: the download stays as fast"
    (event,) = downloads.all()
    assert (event.actor, event.object_type, event.object_id, event.project) == (
        personas.data_lead, "releases.release", str(release.pk), personas.project
    )  # fmt: skip
    assert event.payload == {
        "release": release.pk, "version": release.version, "file": "trl_preference/train.jsonl",
        "format": found.fmt, "sha256": found.sha256, "via": "web",
    }  # fmt: skip
    assert client.get(url, headers={"If-None-Match": f'"{found.sha256}"'}).status_code == 304
    assert downloads.all().count() == 1, "'not modified' sends no file: no download"

    api = client.get(f"/api/v1/projects/{personas.project.pk}/releases/{release.pk}/files/{found.pk}/")
    assert hashlib.sha256(_body(api)).hexdigest() == found.sha256
    sheet = client.get(f"/api/v1/projects/{personas.project.pk}/releases/{release.pk}/datasheet/?as=md")
    assert _body(sheet).startswith(b"# Datasheet")
    client.get(f"/api/v1/projects/{personas.project.pk}/releases/{release.pk}/datasheet/")  # JSON: no file
    assert [(e.payload["file"], e.payload["via"]) for e in downloads.all()] == [
        ("trl_preference/train.jsonl", "web"), ("trl_preference/train.jsonl", "api"), ("datasheet.md", "api")
    ]  # fmt: skip

    page = client_for(personas.project_admin).get(f"/projects/{personas.project.pk}/audit/?action=release.download")
    html = page.content.decode()
    assert "<dt>file</dt><dd>trl_preference/train.jsonl</dd>" in html
    assert (
        f'<dt>release</dt><dd><a href="/projects/{personas.project.pk}/releases/{release.pk}/">#{release.pk}</a>'
        in html
    )
    assert f'<span class="hash" title="{found.sha256}">{found.sha256[:12]}…</span>' in html
    assert f'<a href="/projects/{personas.project.pk}/releases/{release.pk}/">releases.release:{release.pk}</a>' in html
    assert "{'" not in html, "no Python reprs"
    assert "'release'" not in html


def test_it_audits_an_export_to_a_directory_as_a_download_by_the_platform(personas: Personas, tmp_path: Path) -> None:
    from django.core.management import call_command

    judged(personas, PROMPTS[:6])
    release = build(personas.project, personas.data_lead)
    call_command("release_export", str(release.pk), str(tmp_path), "--format", "trl_preference", stdout=io.StringIO())
    event = AuditEvent.objects.get(action="release.download")
    assert (event.actor, event.actor_label, event.object_id, event.project) == (
        None, "(system)", str(release.pk), personas.project
    )  # fmt: skip
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert event.payload == {
        "release": release.pk, "version": release.version, "files": len(written), "format": ["trl_preference"],
        "directory": str(tmp_path), "via": "command",
    }  # fmt: skip
