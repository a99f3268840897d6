"""Comparing by keyboard only, in a real Chromium: pairwise with strength, and an N-way ranking with a tie."""

import pytest
from playwright.sync_api import expect

from annotation.models import Draft
from preferences.models import Judgement
from tests.browser.conftest import screenshot
from tests.browser.test_labeling import _login
from tests.conftest import make_personas
from tests.preferences.helpers import comparison_line, import_comparisons, letter_of, set_mode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPTED = '<script>document.title="owned"</script><img src=x onerror="document.title=\'owned\'">'


def _current_item(page) -> int:  # type: ignore[no-untyped-def]
    """The comparison on screen, once the page is ready for keys (htmx has wired up its autosave)."""
    page.wait_for_selector("#compare-form[data-ready]")
    return int(page.get_attribute("#compare-form", "data-item") or 0)


def test_it_takes_three_pairwise_comparisons_by_keyboard_only(page) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    lines = [
        comparison_line(
            f"Question {n}: can I raise my transfer limit?",
            f"**Yes.** Open *Payments → Limits* (answer {n}a).\n\n```\nlimit = 20000\n```",
            f"No idea, ask someone else (answer {n}b). {SCRIPTED}",
        )
        for n in range(3)
    ]
    import_comparisons(personas.project, personas.data_lead, *lines)
    _login(page, "annotator")
    page.goto(f"/projects/{personas.project.pk}/compare/")
    page.wait_for_selector("#compare-form")
    screenshot(page, "compare-pairwise")
    assert page.title() != "owned", "an imported script never runs"
    expect(page.locator(".candidate-body strong").first).to_have_text("Yes.")

    # First: candidate 0 much better (its letter, then Shift+3), submitted twice in a row.
    first = _current_item(page)
    from annotation.models import Item

    item = Item.objects.get(pk=first)
    page.keyboard.press("1" if letter_of(personas.annotator, item, 0) == "A" else "2")
    page.keyboard.press("Shift+Digit3")
    expect(page.locator("#draft-status")).to_contain_text("Draft saved")
    expect(page.locator(".candidate.chosen")).to_have_count(1)
    screenshot(page, "compare-pairwise-chosen", guide="compare")
    page.keyboard.press("Control+Enter")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#workspace .notice")).to_contain_text("Saved")
    expect(page.locator("#compare-form")).not_to_have_attribute("data-item", str(first))

    # Second: a tie. Third: both bad, after a reload restores the half-made choice from the draft.
    second = _current_item(page)
    expect(page.locator("input[name=strength]").first).to_be_enabled()
    page.keyboard.press("Shift+Digit2")
    page.keyboard.press("3")
    expect(page.locator("input[name=strength]").first).to_be_disabled()  # a tie has no strength: switched off, not sent
    page.keyboard.press("Shift+Digit1")
    expect(page.locator("input[name=strength][value='1']")).not_to_be_checked()
    page.keyboard.press("Control+Enter")
    expect(page.locator("#compare-form")).not_to_have_attribute("data-item", str(second))
    third = _current_item(page)
    page.keyboard.press("0")
    expect(page.locator("#draft-status")).to_contain_text("Draft saved")
    page.reload()
    page.wait_for_selector("#compare-form")
    assert _current_item(page) == third
    expect(page.locator("input[name=choice][value=both_bad]")).to_be_checked()
    expect(page.locator("input[name=strength]").first).to_be_disabled()
    page.keyboard.press("Control+Enter")
    expect(page.locator("#workspace h2")).to_have_text("Saved. That was your last comparison for now")
    screenshot(page, "compare-queue-done", guide="compare-done")

    stored = {j.item_id: j for j in Judgement.objects.filter(annotator=personas.annotator)}
    assert set(stored) == {first, second, third}, "three judgements, the double submit stored once"
    assert stored[first].result == {"winner": 0, "strength": 3}
    assert stored[second].result == {"winner": "tie", "strength": None}
    assert stored[third].result == {"winner": "both_bad", "strength": None}
    assert all(j.time_spent_ms > 0 for j in stored.values())
    assert not Draft.objects.filter(user=personas.annotator).exists(), "drafts go once submitted"


def test_it_takes_an_n_way_ranking_with_a_tie_by_keyboard(page) -> None:  # type: ignore[no-untyped-def]
    """Then says in one message that the last one is saved and why nothing is left; the project page tells
    the open slots someone can take from those that need another annotator; the audit log reads as fields."""
    from annotation import services as annotation_services

    personas = make_personas()
    set_mode(personas.project, personas.data_lead, "ranking", gold_rate=0.0)
    annotation_services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=4, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    import_comparisons(
        personas.project, personas.data_lead,
        comparison_line(
            "Summarise the complaint.", "Best summary.", "Weak summary.", "Also a best summary.",
            models=("m-alpha", "m-beta", "m-gamma"),
        ),
    )  # fmt: skip
    _login(page, "annotator")
    page.goto(f"/projects/{personas.project.pk}/compare/")
    page.wait_for_selector("#compare-form[data-mode=ranking]")
    from annotation.models import Item

    item = Item.objects.get(project=personas.project)
    # Cards in display order; the page starts on the first one, and a rank key moves to the next.
    ranks = {0: "1", 1: "2", 2: "1"}
    for position in range(3):
        letter = "ABC"[position]
        candidate = next(c for c in range(3) if letter_of(personas.annotator, item, c) == letter)
        expect(page.locator(f".candidate[data-letter={letter}]")).to_be_focused()
        page.keyboard.press(ranks[candidate])
    expect(page.locator("#draft-status")).to_contain_text("Draft saved")
    screenshot(page, "compare-ranking-tie")
    page.set_viewport_size({"width": 420, "height": 900})
    screenshot(page, "compare-ranking-narrow")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#workspace h2")).to_have_text("Saved. That was your last comparison for now")
    expect(page.locator("#workspace .notice")).to_have_count(0)  # no "here is the next" above it
    expect(page.locator("#queue-left")).to_contain_text("You judged 1 comparison. It still needs other people")
    screenshot(page, "queue-saved-last")
    judgement = Judgement.objects.get(annotator=personas.annotator)
    assert judgement.result == {"ranking": [[0, 2], [1]]}
    assert judgement.mode == "ranking"
    assert "m-alpha" not in page.content()

    page.context.clear_cookies()
    page.set_viewport_size({"width": 1280, "height": 860})
    _login(page, "project_admin")
    page.goto(f"/projects/{personas.project.pk}/")
    # Four people per item, three members who annotate, one of them done: two slots open, one stuck.
    expect(page.locator("#open-slots .num")).to_have_text("2")
    expect(page.locator("#stuck-why")).to_contain_text("1 open slot needs another annotator")
    screenshot(page, "queue-overview-stuck")
    page.goto(f"/projects/{personas.project.pk}/audit/")
    expect(page.locator(".audit-details .audit-details dt", has_text="pii mode").first).to_be_visible()  # nested
    expect(page.locator(".audit .payload").first).not_to_contain_text("{'")
    screenshot(page, "queue-audit-fields", guide="audit")


def test_it_keeps_a_refused_judgements_choice_and_starts_the_next_one_on_the_keys(page) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0, rationale_required=True)
    import_comparisons(
        personas.project, personas.data_lead,
        comparison_line("First?", "One answer.", "Another answer."),
        comparison_line("Second?", "A third answer.", "A fourth answer."),
    )  # fmt: skip
    _login(page, "annotator")
    page.goto(f"/projects/{personas.project.pk}/compare/")
    first = _current_item(page)
    expect(page).to_have_url(f"{page.url.split('/projects/')[0]}/projects/{personas.project.pk}/compare/{first}/")
    page.keyboard.press("2")
    expect(page.locator("input[name=strength][value='1']")).to_be_checked()  # what B alone is stored as
    page.keyboard.press("Shift+Digit3")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#submit-error")).to_contain_text("Say why")
    expect(page.locator("input[name=choice][value=B]")).to_be_checked()
    expect(page.locator("input[name=strength][value='3']")).to_be_checked()
    screenshot(page, "compare-refused-keeps-choice")

    page.focus("#id_rationale")
    page.keyboard.type("Cites the rule 1.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#compare-form")).not_to_have_attribute("data-item", str(first))
    second = _current_item(page)
    page.keyboard.press("1")  # a key for the new comparison, not a character in its empty rationale
    expect(page.locator("input[name=choice][value=A]")).to_be_checked()
    expect(page.locator("#id_rationale")).to_have_value("")
    stored = Judgement.objects.get(annotator=personas.annotator, item_id=first)
    assert stored.displayed_result == {"choice": "B", "strength": "3"}
    assert stored.rationale == "Cites the rule 1."
    assert second != first
