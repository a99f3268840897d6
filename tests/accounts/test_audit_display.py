"""The audit page shows an event's details as readable fields, never as Python reprs."""

import pytest

from accounts.audit_display import event_details, object_link
from accounts.models import AuditEvent
from accounts.services import audit_event_record
from tests.conftest import ClientFor, Personas

pytestmark = pytest.mark.django_db

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_it_renders_nested_values_hashes_and_ids_as_fields(personas: Personas) -> None:
    event = AuditEvent(
        action="release.create", object_type="releases.release", object_id="7", project=personas.project,
        payload={
            "release": 7, "recipe": {"eval_fraction": 0.2, "ties": "keep", "mix": {"share": None}},
            "criteria": [{"key": "tone"}, {"key": "facts"}], "formats": ["trl", "openai"], "gold": False,
            "hash": HASH, "note": "<script>x</script>",
        },
    )  # fmt: skip
    html = str(event_details(event))
    assert html.startswith('<dl class="audit-details">')
    assert f'<dt>release</dt><dd><a href="/projects/{personas.project.pk}/releases/7/">#7</a></dd>' in html
    assert '<dt>recipe</dt><dd><dl class="audit-details"><div><dt>eval fraction</dt><dd>0.2</dd></div>' in html
    assert '<dt>mix</dt><dd><dl class="audit-details"><div><dt>share</dt><dd><span class="muted">—</span>' in html
    assert '<ol class="audit-list"><li><dl class="audit-details"><div><dt>key</dt><dd>tone</dd>' in html
    assert "<dt>formats</dt><dd>trl, openai</dd>" in html
    assert "<dt>gold</dt><dd>no</dd>" in html
    assert f'<span class="hash" title="{HASH}">{HASH[:12]}…</span>' in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html, "values are escaped"
    assert "{'" not in html
    assert "[{" not in html
    assert str(object_link(event)) == f'<a href="/projects/{personas.project.pk}/releases/7/">releases.release:7</a>'
    assert str(object_link(AuditEvent(object_type="annotation.item", object_id="3"))) == "annotation.item:3"


def test_it_shows_the_audit_page_with_fields_not_reprs(personas: Personas, client_for: ClientFor) -> None:
    audit_event_record(
        actor=personas.data_lead, action="preferences.settings_update", object_type="preferences.preferencesettings",
        object_id=personas.project.pk, project=personas.project, payload={"mode": "pairwise", "gold_rate": 0.2},
    )  # fmt: skip
    html = client_for(personas.project_admin).get(f"/projects/{personas.project.pk}/audit/").content.decode()
    assert "<dt>gold rate</dt><dd>0.2</dd>" in html
    assert "<dt>mode</dt><dd>pairwise</dd>" in html
    assert "gold_rate=" not in html
