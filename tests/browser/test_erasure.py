"""Erasure in a real browser, as a data lead: search, the preview with the match highlighted, erase with a
reason (asked first), the report, the tainted release with its rebuild button, and the retention page; each
page fits a phone and a desktop window and passes axe."""

import pytest
from playwright.sync_api import expect

from governance.models import Erasure
from releases.models import Release
from tests.browser.axe import axe_findings
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_personas
from tests.releases.helpers import build, comparisons, judge

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NUMBER = "KD-2041-7733"


def _checked(page, name: str) -> None:  # type: ignore[no-untyped-def]
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 860})
        page.wait_for_timeout(400)  # the page's resize handler (debounced) makes scrolling tables focusable
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} overflows at {width} px"
        assert axe_findings(page) == [], f"{name} at {width} px"
        screenshot(page, f"erasure-{name}-{width}")


def test_it_previews_erases_and_shows_the_taint_to_a_data_lead(page) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    prompts = [f"Card of customer {NUMBER} was swallowed, what now?", "Which fee applies to a late payment?"]
    for n, item in enumerate(comparisons(personas.project, personas.data_lead, prompts)):
        judge(item, personas.reviewer, {"winner": n % 2, "strength": 1})
    release = build(personas.project, personas.data_lead, eval_fraction=0.0)
    project = f"/projects/{personas.project.pk}"

    log_in(page, "data_lead")
    page.goto("/erasure/")
    _checked(page, "search")
    page.fill("#term", "KD[- ]?2041[- ]?7733")
    page.check("input[name=mode][value=pattern]")
    page.click("#erasure-search button[type=submit]")
    expect(page.locator("#preview-summary")).to_contain_text("Nothing has changed yet")
    expect(page.locator("#preview-hits mark").first).to_have_text(NUMBER)
    _checked(page, "preview")

    page.click("#erase-form button")  # no reason: the browser refuses the form
    assert page.evaluate("document.querySelector('#reason').validity.valueMissing")
    page.fill("#reason", "Subject request DSR-17")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#erase-form button")
    expect(page.locator(".messages")).to_contain_text("Erased")
    erasure = Erasure.objects.get()
    expect(page.locator("#taints")).to_contain_text(str(release))
    page.reload()  # without the message list (base.html's list with role=status is axe's "listitem" finding)
    _checked(page, "report")
    assert NUMBER not in page.content()

    page.goto(f"{project}/releases/{release.pk}/")
    expect(page.locator("#tainted")).to_contain_text(f"erasure #{erasure.pk}")
    _checked(page, "tainted-release")
    page.click("#rebuild-without-erased")
    expect(page.locator(".messages")).to_contain_text("without the erased items")
    rebuilt = Release.objects.exclude(pk=release.pk).get()
    assert page.url.endswith(f"/releases/{rebuilt.pk}/")

    page.goto(f"{project}/retention/")
    page.fill("#import_upload_days", "7")
    page.click("#retention-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Retention saved")
    expect(page.locator("#import_upload_days")).to_have_value("7")
    page.reload()
    _checked(page, "retention")
