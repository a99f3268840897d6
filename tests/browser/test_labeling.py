import time

import pytest
from playwright.sync_api import expect

from annotation.models import Annotation, AnnotationState, Draft
from tests.annotation.helpers import give_rubric, import_items
from tests.browser.conftest import screenshot
from tests.conftest import make_personas
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Your projects')")


def _annotating(page):  # type: ignore[no-untyped-def]
    """Three items under a rubric, and the annotator on the annotate page."""
    personas = make_personas()
    give_rubric(personas.project, personas.data_lead)
    import_items(personas.project, personas.data_lead, 3)
    _login(page, "annotator")
    page.goto(f"/projects/{personas.project.pk}/annotate/")
    page.wait_for_selector("#label-form")
    return personas


def _label_with_keys(page, answer: str) -> None:  # type: ignore[no-untyped-def]
    """Type the ideal response, Tab into each criterion, score it with a number key, Ctrl+Enter."""
    expect(page.locator("#id_response")).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type(answer)
    page.keyboard.press("Tab")  # → Correct
    page.keyboard.press("1")  # pass
    page.keyboard.press("Tab")  # → Helpful
    page.keyboard.press("4")
    page.keyboard.press("Tab")  # → Tone
    page.keyboard.press("2")  # casual
    page.keyboard.press("Control+Enter")


def test_it_lets_an_annotator_label_by_keyboard_and_a_closed_tab_loses_nothing(page, browser, live_server) -> None:  # type: ignore[no-untyped-def]
    personas = _annotating(page)
    screenshot(page, "label-first-item", guide="annotate")
    first_item = page.get_attribute("#label-form", "data-item")

    _label_with_keys(page, "First ideal answer.")
    expect(page.locator("#label-form")).not_to_have_attribute("data-item", first_item or "")
    expect(page.locator("#workspace .notice")).to_contain_text("Submitted")
    second_item = page.get_attribute("#label-form", "data-item")
    _label_with_keys(page, "Second ideal answer.")
    expect(page.locator("#label-form")).not_to_have_attribute("data-item", second_item or "")
    stored = Annotation.objects.filter(annotator=personas.annotator).order_by("id")
    assert [a.response for a in stored] == ["First ideal answer.", "Second ideal answer."]
    assert all(a.scores == {"correct": "pass", "helpful": "4", "tone": "casual"} for a in stored)
    assert all(a.time_spent_ms > 0 for a in stored)

    third_item = page.get_attribute("#label-form", "data-item")
    page.locator("#id_response").fill("Half-written third answer")
    page.keyboard.press("Tab")
    page.keyboard.press("3")  # nothing on a two-option scale: stays unscored
    page.keyboard.press("Tab")
    page.keyboard.press("2")
    expect(page.locator("#draft-status")).to_contain_text("Draft saved")
    page.close()  # the tab is gone mid-draft

    context = page.context
    again = context.new_page()
    again.goto(f"/projects/{personas.project.pk}/annotate/")
    again.wait_for_selector("#label-form")
    assert again.get_attribute("#label-form", "data-item") == third_item
    expect(again.locator("#id_response")).to_have_value("Half-written third answer")
    expect(again.locator("input[name=score_helpful][value='2']")).to_be_checked()
    expect(again.locator("#draft-status")).to_contain_text("Draft restored")
    screenshot(again, "label-draft-restored")
    assert Draft.objects.get(user=personas.annotator).data["response"] == "Half-written third answer"
    again.close()


def test_it_lets_a_reviewer_approve_one_and_send_one_back(page) -> None:  # type: ignore[no-untyped-def]
    from annotation import services
    from tests.annotation.helpers import GOOD_SCORES

    personas = make_personas()
    give_rubric(personas.project, personas.data_lead)
    import_items(personas.project, personas.data_lead, 2)
    for n in range(2):
        slot = services.item_next(user=personas.annotator, project=personas.project)
        assert slot is not None
        services.annotation_submit(
            user=personas.annotator, item=slot.item, response=f"Answer {n}", scores=GOOD_SCORES, flags=[],
            note="", time_spent_ms=1000, submit_key=f"k{n}",
        )  # fmt: skip
    _login(page, "reviewer")
    page.goto(f"/projects/{personas.project.pk}/review/")
    expect(page.locator("#review-queue tbody tr")).to_have_count(2)
    screenshot(page, "review-queue", guide="review-queue")
    page.locator("#review-queue tbody tr a").first.click()
    page.wait_for_selector("#review-form")
    screenshot(page, "review-page", guide="review")
    page.click("button[value=approve]")
    page.wait_for_selector(".message.success")
    page.fill("#id_comment", "Please mention the three-day wait.")
    page.click("button[value=reject]")
    page.wait_for_selector(".message.success")
    states = dict(Annotation.objects.values_list("response", "state"))
    assert states == {"Answer 0": AnnotationState.APPROVED, "Answer 1": AnnotationState.REJECTED}
    expect(page.locator("#review-queue tbody")).to_contain_text("Nothing waits for review")


def test_it_shows_the_queue_not_a_stale_form_on_back_after_a_submit(page) -> None:  # type: ignore[no-untyped-def]
    """htmx keeps no page snapshots: Back asks the server, which says the item was submitted and moves on,
    so an annotator cannot edit a submitted answer in a stale form and believe it saved."""
    personas = _annotating(page)
    first_item = page.get_attribute("#label-form", "data-item")
    page.goto(f"/projects/{personas.project.pk}/annotate/{first_item}/")  # the item's own address, as a bookmark
    _label_with_keys(page, "First ideal answer.")
    expect(page.locator("#label-form")).not_to_have_attribute("data-item", first_item or "")
    second_item = page.get_attribute("#label-form", "data-item")
    assert page.url.endswith(f"/annotate/{second_item}/")

    page.go_back()
    expect(page.locator(".messages, .notice").first).to_contain_text(f"You submitted item #{first_item} already")
    expect(page.locator("#label-form")).to_have_attribute("data-item", second_item or "")
    expect(page.locator("#id_response")).not_to_have_value("First ideal answer.")
    screenshot(page, "label-back-after-submit")
    assert Annotation.objects.get(annotator=personas.annotator).response == "First ideal answer."


def test_it_keeps_words_typed_just_before_leaving_the_page(page) -> None:  # type: ignore[no-untyped-def]
    """The autosave waits for a pause in typing; leaving the page sooner sends what was typed anyway."""
    personas = _annotating(page)
    item = page.get_attribute("#label-form", "data-item")
    expect(page.locator("#id_response")).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("Typed just before leaving")
    page.goto("/")  # at once: no pause for the autosave
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        draft = Draft.objects.filter(user=personas.annotator).first()
        if draft is not None and draft.data.get("response") == "Typed just before leaving":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the last words never reached the draft")
    page.goto(f"/projects/{personas.project.pk}/annotate/")
    page.wait_for_selector("#label-form")
    assert page.get_attribute("#label-form", "data-item") == item
    expect(page.locator("#id_response")).to_have_value("Typed just before leaving")


def test_it_submits_the_work_once_after_signing_out_in_another_tab_and_back_in(browser, live_server) -> None:  # type: ignore[no-untyped-def]
    """Logging out (or the session ending) leaves the open form as it is, says what happened, and after a
    login in another tab (which gives a new CSRF token) the same form submits without retyping."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=live_server.url)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        personas = _annotating(page)
        page.locator("#id_response").fill("Written before the logout.")
        page.keyboard.press("Tab")
        page.keyboard.press("1")
        page.keyboard.press("Tab")
        page.keyboard.press("4")
        expect(page.locator("#draft-status")).to_contain_text("Draft saved")

        other = context.new_page()
        other.goto("/")
        other.click("details.menu summary")
        other.click("text=Log out")
        other.wait_for_url("**/login/**")

        page.locator("#id_response").fill("Written before the logout, finished after it.")
        page.keyboard.press("Control+Enter")
        expect(page.locator(".messages")).to_contain_text("You are signed out")
        expect(page.locator(".messages a")).to_have_attribute("target", "_blank")
        expect(page.locator("#id_response")).to_have_value("Written before the logout, finished after it.")
        assert not page.locator("#workspace #id_username").count(), "no login form swapped into the work"
        screenshot(page, "label-signed-out")

        _login(other, "annotator")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#workspace .notice")).to_contain_text("Submitted")
        expect(page.locator(".messages")).not_to_contain_text("You are signed out")
        stored = Annotation.objects.get(annotator=personas.annotator)
        assert stored.response == "Written before the logout, finished after it."
        assert [e for e in errors if "401" not in e] == [], errors
    finally:
        context.close()
