"""The whole evaluation loop in a real browser, with a real worker generating the answers: a project admin
starts a blind evaluation of an adapter against its base model, an annotator judges its comparisons by keyboard
without seeing which model wrote what, the admin reads the results and finishes the evaluation, asks for the
adapter's promotion on a deployment target, two approvers approve it (the requester may not), a serving stack
pulls the promoted adapter, and a rollback brings the base model back."""

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from statsmodels.stats.proportion import proportion_confint

from annotation.models import Item
from evaluation.models import DeploymentTarget, Evaluation, EvaluationState
from evaluation.services import deployment_target_create
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_personas
from tests.evaluation.helpers import stored_adapter
from tests.evaluation.judging_helpers import system_of
from tests.preferences.helpers import letter_of
from tests.training.helpers import preference_release, ready_model
from tests.workers import start_worker, stop_worker

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PROMPTS = [
    "How do I order a replacement debit card?",
    "Can I pause my standing order for one month?",
    "What happens if I enter my PIN wrongly three times?",
]
TARGET = "retail-assistant"


def _log_out_and_in(page, username: str) -> None:  # type: ignore[no-untyped-def]
    page.context.clear_cookies()
    log_in(page, username)


def _wait_for_state(evaluation: Evaluation, state: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        evaluation.refresh_from_db()
        if evaluation.state == state:
            return
        if evaluation.state == EvaluationState.FAILED:
            break
        time.sleep(0.3)
    pytest.fail(f"evaluation is {evaluation.state}: {evaluation.failure_reason}\n{log.read_text()[-4000:]}")


def test_it_runs_an_evaluation_judges_it_blind_and_promotes_then_rolls_back_the_adapter(  # type: ignore[no-untyped-def]
    page, tiny_model_dir: Path, tmp_path: Path
) -> None:
    personas = make_personas()
    release = preference_release(personas.project, personas.data_lead, personas.reviewer)
    base = ready_model(personas.staff, tiny_model_dir, name="qwx-base")
    adapter = stored_adapter(personas, base, release, tmp_path / "adapter", changes_answers=True)
    deployment_target_create(
        actor=personas.project_admin, project=personas.project, name=TARGET, base_model=base, min_win_rate_lower=0.4
    )
    prompt_file = tmp_path / "held-out.jsonl"
    prompt_file.write_text("".join(f'{{"prompt": "{text}"}}\n' for text in PROMPTS))
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    worker = start_worker("gpu,default", "browser-loop", output=log)
    try:
        # 1. The project admin starts the evaluation: the adapter against its base model, on three uploaded prompts.
        log_in(page, "project_admin")
        page.goto(f"/projects/{personas.project.pk}/evaluations/new/")
        page.select_option("#id_adapter", str(adapter.pk))
        page.select_option("#id_against", "base_model")
        page.select_option("#id_source", "upload")
        page.set_input_files("#id_upload", str(prompt_file))
        page.select_option("#id_fmt", "prompt_response_jsonl")
        page.fill("#id_max_new_tokens", "16")
        screenshot(page, "evaluation-new")
        page.click("#evaluation-form button[type=submit]")
        page.wait_for_selector("#evaluation-state, .errorlist, .error-box")
        assert page.locator("#evaluation-state").count() == 1, page.locator("main").inner_text()[:2000]
        evaluation = Evaluation.objects.get(project=personas.project)
        assert evaluation.decoding["max_new_tokens"] == 16
        screenshot(page, "evaluation-generating")

        # The page follows the runs without a reload until the comparisons are ready to judge.
        page.evaluate("window.__marker = 'same page'")
        _wait_for_state(evaluation, EvaluationState.JUDGING, log_path)
        expect(page.locator("#evaluation-state")).to_have_text("Being judged", timeout=10_000)
        assert page.evaluate("window.__marker") == "same page", "the state arrives without a reload"
        expect(page.locator("#systems tbody")).to_contain_text("3 / 3")
        screenshot(page, "evaluation-being-judged")
        judging = evaluation.judging_project
        assert judging is not None

        # 2. The annotator judges the three comparisons by keyboard, each time for the adapter's answer.
        _log_out_and_in(page, "annotator")
        page.goto(f"/projects/{judging.pk}/compare/")
        hidden = {adapter.name, base.name, *evaluation.systems.values_list("label", flat=True)}
        for n in range(3):
            page.wait_for_selector("#compare-form[data-ready], #workspace h2")
            assert page.locator("#compare-form").count() == 1, page.locator("main").inner_text()[:2000]
            html = page.content()
            shown = [name for name in hidden if name in html]
            assert shown == [], f"the annotator's page names {shown}"
            item = Item.objects.get(pk=int(page.get_attribute("#compare-form", "data-item") or 0))
            mine = next(c for c in range(len(item.candidates)) if system_of(item, c) == 0)
            page.keyboard.press("1" if letter_of(personas.annotator, item, mine) == "A" else "2")
            expect(page.locator(".candidate.chosen")).to_have_count(1)
            if n == 0:
                screenshot(page, "evaluation-judging")
            page.keyboard.press("Control+Enter")
            if n < 2:
                expect(page.locator("#compare-form")).not_to_have_attribute("data-item", str(item.pk))
        expect(page.locator("#workspace h2")).to_contain_text("last comparison")

        # 3. The project admin reads the results: 3 wins of 3, with Wilson's interval, and finishes.
        _log_out_and_in(page, "project_admin")
        page.goto(f"/projects/{personas.project.pk}/evaluations/{evaluation.pk}/")
        low, high = proportion_confint(3, 3, alpha=0.05, method="wilson")
        row = page.locator("#head-to-head tbody tr").first
        cells = row.locator("td").all_inner_texts()
        assert cells[1:4] == ["3", "0", "0"], cells
        assert cells[4] == "1.000"
        assert cells[5] == f"{low:.3f} – {high:.3f}", cells
        screenshot(page, "evaluation-results")
        page.click("#finish")
        expect(page.locator("#evaluation-state")).to_have_text("Finished")
        evaluation.refresh_from_db()
        assert evaluation.results is not None
        assert evaluation.results["head_to_head"][0]["low"] == pytest.approx(low)

        # 4. The project admin asks for the promotion: the gate passes; the requester may not approve it.
        page.goto(f"/projects/{personas.project.pk}/deployments/{TARGET}/")
        page.select_option("#promote-form select[name=adapter]", str(adapter.pk))
        page.select_option("#promote-form select[name=evaluation]", str(evaluation.pk))
        page.click("#promote-form button[type=submit]")
        expect(page.locator("#pending")).to_be_visible()
        gate = page.locator("#pending table tbody tr")
        assert gate.count() >= 2
        for result in gate.locator("td:nth-child(2)").all_inner_texts():
            assert result in ("pass", "skipped"), gate.all_inner_texts()
        assert "pass" in gate.locator("td:nth-child(2)").all_inner_texts()
        assert page.locator("#approve-form").count() == 0, "the requester cannot approve their own request"
        screenshot(page, "deployment-requested")

        # 5. The approver approves (1 of 2, not promoted yet); staff approves (promoted).
        _log_out_and_in(page, "approver")
        page.goto(f"/projects/{personas.project.pk}/deployments/{TARGET}/")
        page.click("#approve-form button[type=submit]")
        expect(page.locator("#approvals")).to_contain_text("1 of 2")
        assert DeploymentTarget.objects.get(name=TARGET).current_adapter_id is None
        _log_out_and_in(page, "staff")
        page.goto(f"/projects/{personas.project.pk}/deployments/{TARGET}/")
        page.click("#approve-form button[type=submit]")
        expect(page.locator("#current-model")).to_contain_text(adapter.name)
        screenshot(page, "deployment-promoted")

        # 6. A serving stack (here the logged-in session) pulls the current model.
        current = page.request.get(f"/api/v1/projects/{personas.project.pk}/deployment-targets/{TARGET}/current/")
        assert current.ok, current.text()
        body = current.json()
        assert (body["adapter"], body["adapter_name"], body["adapter_sha256"]) == (
            adapter.pk,
            adapter.name,
            adapter.sha256,
        )
        assert body["base_model"]["hash"] == adapter.base_model_hash

        # 7. A rollback to the base model, with a reason, approved by the approver.
        _log_out_and_in(page, "project_admin")
        page.goto(f"/projects/{personas.project.pk}/deployments/{TARGET}/")
        page.select_option("#rollback-form select[name=adapter]", "base")
        page.fill("#rollback-form textarea[name=reason]", "Answers got longer in production")
        page.click("#rollback-form button[type=submit]")
        expect(page.locator("#pending")).to_contain_text("Answers got longer in production")
        _log_out_and_in(page, "approver")
        page.goto(f"/projects/{personas.project.pk}/deployments/{TARGET}/")
        page.click("#approve-form button[type=submit]")
        expect(page.locator("#current-model")).to_contain_text("alone")
        assert DeploymentTarget.objects.get(name=TARGET).current_adapter_id is None
        screenshot(page, "deployment-rolled-back")
    finally:
        stop_worker(worker, timeout=60)
        log.close()
