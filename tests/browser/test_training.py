"""A project admin trains a DPO adapter from the browser: the job form (preset filled by script), the live
job page (state, steps, charts drawn by the vendored uPlot) while a real gpu worker trains, and the
adapter's lineage page."""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_personas
from tests.training.helpers import preference_release, ready_model
from tests.workers import start_worker, stop_worker
from training.models import Adapter, TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_it_lets_a_project_admin_start_a_dpo_job_watch_it_and_open_the_lineage(  # type: ignore[no-untyped-def]
    page, tiny_model_dir: Path, tmp_path: Path
) -> None:
    personas = make_personas()
    release = preference_release(personas.project, personas.data_lead, personas.reviewer)
    ready_model(personas.staff, tiny_model_dir)
    log = (tmp_path / "gpu-worker.log").open("w")
    worker = start_worker("gpu", "browser-gpu", output=log)
    try:
        log_in(page, "project_admin")
        page.goto(f"/projects/{personas.project.pk}/training/new/")
        page.select_option("#id_preset", "standard")
        expect(page.locator("#id_max_length")).to_have_value("2048")
        page.select_option("#id_preset", "cpu_check")  # the script fills every field from the preset
        expect(page.locator("#id_max_length")).to_have_value("384")
        expect(page.locator("#id_lora_r")).to_have_value("8")
        assert page.locator("#id_release").input_value() == str(release.pk)
        page.fill("#id_max_steps", "30")
        page.fill("#id_eval_steps", "10")
        screenshot(page, "training-new", guide="training-new")
        page.click("#job-form button[type=submit]")
        page.wait_for_selector("#job-status, .errorlist, .error-box")
        assert page.locator("#job-status").count() == 1, page.locator("main").inner_text()[:2000]
        job = TrainingJob.objects.get(project=personas.project)
        assert job.config["max_steps"] == 30
        assert job.preset == "cpu_check"

        # Live: the steps advance and the charts get points while the worker trains, without a reload.
        page.evaluate("window.__marker = 'same page'")
        expect(page.locator("#job-steps")).to_contain_text("of 30", timeout=90_000)
        assert page.evaluate("window.__marker") == "same page", "progress arrives without a reload"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and page.locator("#adapter-link").count() == 0:
            if page.locator("#failure").count():
                pytest.fail(page.locator("#failure").inner_text() + Path(tmp_path / "gpu-worker.log").read_text())
            time.sleep(0.5)
        screenshot(page, "training-job-done", guide="training-job")
        # A project admin sees every project tab; they wrap instead of widening the page past the window.
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
        assert page.locator("#job-state").inner_text() == "Succeeded"
        expect(page.locator("#charts")).to_have_attribute("data-points", re.compile(r"^[1-9][0-9]*$"))
        # The charts stop asking once they have seen the job end; leaving earlier would cut a request short.
        expect(page.locator("#charts")).to_have_attribute("data-active", "0", timeout=10_000)
        assert page.locator("#charts canvas").count() >= 3, "uPlot drew the loss, reward and learning-rate charts"
        assert "train step 30/30" in page.locator("#job-log").inner_text()
        assert page.locator("#evaluation").inner_text().count("0.500") >= 1  # the base model ties every pair

        page.click("#adapter-link")
        adapter = Adapter.objects.get(job=job)
        expect(page.locator("#adapter-sha")).to_have_text(adapter.sha256)
        expect(page.locator("#release-hash")).to_have_text(release.hash)
        expect(page.locator("#base-hash")).to_have_text(adapter.base_model_hash)
        assert "no connection left the machine" in page.locator("#network").inner_text()
        screenshot(page, "training-adapter", guide="adapter")
        lineage = page.request.get(page.locator("#lineage-json").get_attribute("href") or "")
        assert lineage.headers["content-disposition"] == f'attachment; filename="adapter-{adapter.pk}-lineage.json"'
        assert lineage.json()["adapter"]["sha256"] == adapter.sha256
    finally:
        stop_worker(worker, timeout=60)
        log.close()
