import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_personas
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_lets_an_annotator_log_in_and_see_their_projects(page) -> None:  # type: ignore[no-untyped-def]
    make_personas()
    page.goto("/")
    assert page.url.endswith("/login/?next=/")
    screenshot(page, "login", guide="login")
    page.fill("#id_username", "annotator")
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Your projects')")
    rows = page.locator("#projects tbody tr")
    assert rows.count() == 1
    assert "Project A" in rows.first.inner_text()
    assert "Annotator" in rows.first.inner_text()
    assert "Project B" not in page.content()
    screenshot(page, "dashboard-annotator")
    page.click("text=Project A")
    page.wait_for_selector("h1:has-text('Project A')")
    assert page.locator("nav.tabs a", has_text="Members").count() == 0


def test_it_lets_a_project_admin_change_a_role_without_a_reload(page) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    log_in(page, "project_admin")
    page.goto(f"/projects/{personas.project.pk}/members/")
    membership = personas.membership(personas.annotator)
    page.evaluate("window.__marker = 'same page'")
    page.select_option(f"#role-{membership.pk}", "reviewer")
    page.wait_for_selector(f"#member-{membership.pk} .inline-ok")
    assert page.evaluate("window.__marker") == "same page"
    membership.refresh_from_db()
    assert membership.role == "reviewer"
    screenshot(page, "members-role-changed", guide="members")

    page.goto(f"/projects/{personas.project.pk}/audit/")
    page.select_option("#id_action", "membership.change_role")
    page.wait_for_url("**action=membership.change_role**")
    expect(page.locator("#audit-table tbody tr")).to_have_count(1)
    expect(page.locator("#audit-table tbody code")).to_have_text("membership.change_role")
    screenshot(page, "audit-filtered")
