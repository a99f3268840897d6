import pytest
from playwright.sync_api import expect

from accounts.models import AuditEvent
from releases.models import Release
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_personas
from tests.releases.helpers import build
from tests.releases.test_build import PROMPTS, judged

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_asks_first_and_needs_a_reason_to_delete_a_release(page) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    judged(personas, PROMPTS[:6])
    release = build(personas.project, personas.data_lead, name="Retail DPO")
    log_in(page, "project_admin")
    page.goto(f"/projects/{personas.project.pk}/releases/{release.pk}/")

    page.click("#delete-form button")  # no reason: the browser itself refuses the form
    assert page.evaluate("document.querySelector('#delete-form input[name=reason]').validity.valueMissing")
    page.fill("#delete-form input[name=reason]", "superseded by v2")
    dialogs: list[str] = []

    def dismiss(dialog) -> None:  # type: ignore[no-untyped-def]
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#delete-form button")
    assert len(dialogs) == 1
    assert dialogs[0].startswith("Delete Retail DPO v1?")
    release.refresh_from_db()
    assert release.state == "built", "dismissed: nothing happened"

    page.once("dialog", lambda d: d.accept())
    page.click("#delete-form button")
    expect(page.locator(".messages")).to_contain_text("is deleted; its tombstone keeps the hash")
    screenshot(page, "release-deleted")
    assert Release.objects.get(pk=release.pk).state == "deleted"
    assert AuditEvent.objects.get(action="release.delete").payload["reason"] == "superseded by v2"
