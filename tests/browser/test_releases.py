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


def _shown(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    return page.locator(selector).count() == 1 and page.locator(selector).is_visible()


def _fits(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Screenshots at a desktop and a phone width; at both, nothing is wider than the window."""
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 860})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} overflows at {width} px"
        cut = page.evaluate(
            "[...document.querySelectorAll('main select, main input, main textarea')].filter(e => e.offsetParent)"
            ".filter(e => e.getBoundingClientRect().right > e.closest('.card').getBoundingClientRect().right + 1)"
            ".map(e => e.name)"
        )
        assert cut == [], f"{name} at {width} px: fields past their card: {cut}"
        screenshot(page, f"forms-{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 860})


def test_it_shows_each_form_the_options_of_its_kind(page) -> None:  # type: ignore[no-untyped-def]
    from annotation.models import Item
    from tests.annotation.helpers import chat_line, import_lines
    from tests.factories import ProjectFactory
    from tests.preferences.helpers import make_comparisons
    from tests.training.helpers import preference_release, sft_release
    from training.models import BaseModel

    personas = make_personas()
    comparisons, sft = personas.other_project, ProjectFactory.create(name="Support chats")
    make_comparisons(comparisons, personas.data_lead, 1)
    import_lines(sft, personas.data_lead, chat_line("What is an IBAN?"))
    # A project from before imports followed the project's work, holding both: its job form switches kinds.
    sft_rel = sft_release(personas.project, personas.data_lead, personas.annotator, personas.reviewer, count=4)
    prefs = preference_release(personas.project, personas.data_lead, personas.reviewer, count=4)
    assert Item.objects.filter(project=personas.project).values("kind").distinct().count() == 2
    BaseModel.objects.create(
        name="llama-3-8b", path="/models/llama", state="ready", architecture="LlamaForCausalLM",
        parameter_count=8_030_261_248, linear_modules=["q_proj", "v_proj"], content_hash="b" * 64,
        registered_by=personas.staff,
    )  # fmt: skip
    log_in(page, "staff")

    page.goto(f"/projects/{comparisons.pk}/releases/new/")
    assert page.locator("[name=kind]").evaluate_all("rs => rs.map(r => r.value)") == ["preference"]
    for name in ("aggregation", "ties", "min_agreement_percent", "min_strength", "ranking_pairs", "per_criterion"):
        assert _shown(page, f"#field-{name}"), name
    assert page.locator("#field-mixin_batches, #field-exclude_flags, #field-mixin_percent").count() == 0
    assert page.locator("#id_min_strength").input_value() == "0"
    expect(page.locator("#id_min_strength_helptext")).to_contain_text("0: no minimum")
    _fits(page, "release-comparison")

    page.goto(f"/projects/{sft.pk}/releases/new/")
    assert page.locator("[name=kind]").evaluate_all("rs => rs.map(r => r.value)") == ["sft"]
    for name in ("exclude_flags", "mixin_batches", "mixin_percent"):
        assert _shown(page, f"#field-{name}"), name
    assert page.locator("#field-aggregation, #field-min_strength, #field-per_criterion").count() == 0
    _fits(page, "release-sft")
    page.goto(f"/projects/{sft.pk}/imports/")
    assert page.locator("[name=fmt]").evaluate_all("rs => rs.map(r => r.value)") == [
        "chat_jsonl", "prompt_response_jsonl", "csv", "label_studio_json", "argilla_disk",
    ]  # fmt: skip
    assert not _shown(page, "#field-csv_prompt")
    page.check("#id_fmt_2")  # CSV: its column names appear
    assert _shown(page, "#field-csv_prompt")
    _fits(page, "imports-sft")

    page.goto(f"/projects/{personas.project.pk}/training/new/")
    page.select_option("#id_release", str(sft_rel.pk))
    assert page.locator("#job-form [name=kind]").input_value() == "sft"
    assert _shown(page, "#field-packing")
    assert not _shown(page, "#field-beta")
    assert page.locator("#id_beta").is_disabled(), "hidden options are not sent"
    page.select_option("#id_release", str(prefs.pk))  # the options follow the release's kind
    assert page.locator("#job-form [name=kind]").input_value() == "dpo"
    assert _shown(page, "#field-beta")
    assert _shown(page, "#field-loss_type")
    assert not _shown(page, "#field-packing")
    expect(page.locator("#job-kind")).to_contain_text("DPO (preference optimisation)")
    assert page.locator("#id_beta").input_value() == "0.1", "filled from the preset for the new kind"
    _fits(page, "job")

    failed = BaseModel.objects.create(
        name="llama-typo", path="/models/lama", state="invalid", failure_reason="/models/lama is not a directory.",
        registered_by=personas.staff,
    )  # fmt: skip
    page.goto(f"/models/{failed.pk}/")
    assert _shown(page, "#delete-model-form")
    expect(page.locator("#base-model-edit-form button")).to_have_text("Save and check again")
    _fits(page, "base-model")


def test_it_shows_the_demo_banking_drift_page_with_the_topic_flagged(page) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import call_command

    from accounts.models import Project
    from enclave.management.commands.seed_demo import DEMO_PASSWORD, DEMO_PROJECT

    call_command("seed_demo", verbosity=0)
    banking = Project.objects.get(name=DEMO_PROJECT)
    page.goto("/login/")
    page.fill("#id_username", "datalead")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Your projects')")
    page.goto(f"/projects/{banking.pk}/")
    page.click("#drift-badge a")
    page.wait_for_selector("#drift-summary")
    assert page.locator("#key-topic .badge.warn").inner_text() == "drift"
    assert page.locator("#key-channel .badge.ok").inner_text() == "stable"
    assert page.locator("#drift-farthest tbody tr").count() == 20
    assert "fraud" in page.locator("#drift-gaps").inner_text()
    screenshot(page, "release-drift", guide="release-drift")
