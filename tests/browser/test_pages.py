"""Every page of the product, as the persona who uses it, at a desktop (1280 px) and a phone (390 px) width:
nothing wider than the window, no serious or critical axe finding, and a screenshot of each in
tests/artifacts/pages-<name>-<width>.png. One browser context per persona and width, one data set for all."""

import io
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import expect

from annotation import services as annotation_services
from evaluation.services import evaluation_advance
from preferences.models import Adjudication, Judgement
from releases.models import Release
from tests.access_matrix import (
    matrix_adapter,
    matrix_pending_request,
    matrix_reward_model,
    matrix_scoring_run,
    matrix_served_target,
)
from tests.annotation.helpers import GOOD_SCORES, chat_line, give_rubric, import_lines, jsonl
from tests.browser.axe import LAYOUT_RULES, axe_findings
from tests.browser.conftest import ARTIFACTS, guide_picture, settle, watch
from tests.conftest import Personas, make_personas
from tests.evaluation.judging_helpers import answered_evaluation, run_with_an_answer
from tests.preferences.helpers import comparison_line, import_comparisons
from tests.releases.helpers import build
from training.models import JobLogLine, JobMetric, TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1280, 390)
LONG_ANSWER = "\n\n".join(
    f"Step {n}: open Payments, then Limits, and raise the daily transfer limit to the amount you need; "
    "the change takes effect after a confirmation code reaches your phone."
    for n in range(1, 9)
)


@dataclass(frozen=True)
class Visit:
    name: str
    path: str
    ready: str = "main"  # a selector that is there once the page's scripts have done their first work
    status: int = 200
    holds: str = ""  # a script that must return true on the page, for what a screenshot alone would show
    guide: str = ""  # the user guide's picture of this page at the desktop width (docs/guide/img/<guide>.png)
    guide_narrow: str = ""  # and at the phone width


def _product(p: Personas) -> dict[str, list[Visit]]:
    """One of everything, made through the services, and the pages each persona visits."""
    a = p.project.pk
    give_rubric(p.project, p.data_lead)
    batch = import_lines(
        p.project, p.data_lead,
        *[chat_line(f"Question {n}: can I raise my transfer limit to 20,000 a day?", LONG_ANSWER) for n in range(3)],
    )  # fmt: skip
    assert batch.status == "done", batch.errors
    from accounts.identity import group_mapping_create

    group_mapping_create(actor=p.staff, group="retail-reviewers", project=p.project, role="reviewer")
    group_mapping_create(actor=p.staff, group="enclave-admins", project=None)
    author = p.newcomer
    from accounts.models import Role
    from accounts.services import membership_add

    membership_add(actor=None, project=p.project, user=author, role=Role.ANNOTATOR)
    slot = annotation_services.item_next(user=author, project=p.project)
    assert slot is not None
    annotation = annotation_services.annotation_submit(
        user=author, item=slot.item, response="Open Payments → Limits.", scores=GOOD_SCORES, flags=[], note="",
        time_spent_ms=9000, submit_key="pages",
    )  # fmt: skip
    adapter = matrix_adapter(p)  # a built release, a ready base model, a job that succeeded and its adapter
    job: TrainingJob = p.made["job"]
    _trained(job)
    release: Release = p.made["release"]
    second = build(p.project, p.data_lead, name="Retail DPO", eval_fraction=0.2)
    queued = TrainingJob.objects.create(
        project=p.project, kind="sft", release=release, base_model=job.base_model, config=job.config,
        config_hash=job.config_hash, preset=job.preset, created_by=p.project_admin,
    )  # fmt: skip
    comparisons = import_comparisons(
        p.project, p.data_lead,
        comparison_line("Which reply explains the card freeze better?", "It is frozen.\n\n" + LONG_ANSWER, "Call us."),
        comparison_line("Which reply is kinder?", "Sorry, we can help.", "No."),
    )  # fmt: skip
    disputed = comparisons.items.order_by("id").last()
    assert disputed is not None
    for n, (who, winner, why) in enumerate(
        [
            (p.annotator, 0, "Apologises and offers help; the other refuses without a reason."),
            (author, 1, "Short and honest: we cannot do it, so say so."),
        ]
    ):  # two colleagues who disagree: what the reviewer reads before deciding
        Judgement.objects.create(
            item=disputed, annotator=who, mode="pairwise", seed=n, displayed_order=[0, 1],
            result={"winner": winner, "strength": 2}, displayed_result={"choice": "AB"[winner], "strength": 2},
            rationale=why, time_spent_ms=21_000 + 4_000 * n, idempotency_key=f"pages-dispute-{n}",
        )  # fmt: skip
    adjudication = Adjudication.objects.create(item=disputed, agreement=0.5)
    upload = annotation_services.import_start(
        actor=p.data_lead, project=p.project, upload=io.BytesIO(jsonl(chat_line("Hi?"), "{not json")),
        source_name="support-tickets-2026-11.jsonl", fmt="chat_jsonl", skip_bad_lines=True,
    )  # fmt: skip
    served = matrix_served_target(p)  # a deployment target serving the adapter
    pending = matrix_pending_request(p).split("/")[0]  # a target with a pending promotion and its gate
    finished = p.made["finished_evaluation"]  # the pending promotion's evaluation, with its results
    run = run_with_an_answer(p)  # a generation run with a stored answer
    reward_model = matrix_reward_model(p)  # a reward job's reward model
    scoring = matrix_scoring_run(p)  # a reward model's queued run over the comparisons
    questions = [f"Held-out question {n}: which card fees apply abroad?" for n in range(4)]
    judged = evaluation_advance(evaluation_id=answered_evaluation(p, prompts=questions).pk)  # being judged
    project = f"/projects/{a}"
    return {
        "annotator": [
            Visit("dashboard", "/", "#projects"),
            Visit("overview", f"{project}/"),
            Visit("annotate", f"{project}/annotate/", "#label-form[data-ready]", guide_narrow="annotate-narrow"),
            Visit("compare", f"{project}/compare/", "#compare-form[data-ready]"),
            Visit("rubric", f"{project}/rubric/"),
            Visit("tokens", "/account/tokens/"),
            Visit("password", "/account/password/"),
            Visit("not-found", "/no-such-page/", status=404),
        ],
        "reviewer": [
            Visit("review-queue", f"{project}/review/"),
            Visit("review", f"{project}/review/{annotation.pk}/"),
            Visit("adjudications", f"{project}/adjudication/"),
            Visit("adjudicate", f"{project}/adjudication/{adjudication.pk}/", guide="adjudicate"),
            Visit("quality", f"{project}/quality/"),
        ],
        "data_lead": [
            Visit("imports", f"{project}/imports/", guide="imports"),
            Visit("import", f"{project}/imports/{upload.pk}/"),
            Visit("annotation-settings", f"{project}/annotation-settings/"),
            Visit("comparison-settings", f"{project}/comparison-settings/"),
            Visit("retention", f"{project}/retention/", "#retention-form"),
            Visit("erasures", "/erasure/", "#erasure-search"),
            Visit("on-hold", f"{project}/on-hold/"),
            Visit("releases", f"{project}/releases/"),
            Visit("release-new", f"{project}/releases/new/", guide="release-new"),
            Visit("release", f"{project}/releases/{second.pk}/", guide="release"),
            Visit("release-diff", f"{project}/releases/diff/?a={release.pk}&b={second.pk}"),
            Visit("release-drift", f"{project}/releases/drift/"),
            Visit("training", f"{project}/training/"),
            Visit(
                "job",
                f"{project}/training/{job.pk}/",
                "#charts[data-active='0'][data-points]",
                # the legends name the series, without a "--" for every value when the cursor is elsewhere;
                # the config names the job's kind in words, not by its key
                holds="document.querySelectorAll('#charts .u-legend').length === 3"
                " && !document.querySelector('#charts').innerText.includes('--')"
                " && ![...document.querySelectorAll('#config th')].some(th => th.textContent.trim() === 'kind')"
                " && document.querySelector('#config').innerText.includes('DPO (preference optimisation)')",
            ),
            Visit("job-queued", f"{project}/training/{queued.pk}/", "#charts[data-points]"),
            Visit("adapter", f"{project}/adapters/{adapter}/", "#adapter-history"),
            Visit("reward-model", f"{project}/reward-models/{reward_model}/", "#reward-model-metrics"),
        ],
        "approver": [
            Visit("deployments", f"{project}/deployments/", "#targets"),
            Visit("deployment-pending", f"{project}/deployments/{pending}/", "#approve-form"),
        ],
        "project_admin": [
            Visit("members", f"{project}/members/"),
            Visit("audit", f"{project}/audit/"),
            Visit("training-new", f"{project}/training/new/", "#job-form"),
            Visit("deployment-new", f"{project}/deployments/new/", "#target-form"),
            Visit("deployment", f"{project}/deployments/{served}/", "#rollback-form"),
            Visit("generation", f"{project}/generation/", "#runs"),
            Visit("generation-new", f"{project}/generation/new/", "#generation-form"),
            Visit("generation-run", f"{project}/generation/{run.pk}/", "#provenance"),
            Visit("rounds", f"{project}/rounds/"),
            Visit("round-new", f"{project}/rounds/new/", "#round-form"),
            Visit("scoring", f"{project}/scoring/", "#scoring-runs"),
            Visit("scoring-new", f"{project}/scoring/new/", "#scoring-form"),
            Visit("scoring-run", f"{project}/scoring/{scoring}/", "#provenance"),
            Visit("evaluations", f"{project}/evaluations/", "#evaluations"),
            Visit("evaluation-new", f"{project}/evaluations/new/", "#evaluation-form"),
            Visit("evaluation-judging", f"{project}/evaluations/{judged.pk}/", "#head-to-head"),
            Visit("evaluation-finished", f"{project}/evaluations/{finished.pk}/", "#systems"),
            Visit("adapter-admin", f"{project}/adapters/{adapter}/", "#export-dossier"),
        ],
        "staff": [
            Visit("project-new", "/projects/new/"),
            Visit("users", "/users/"),
            Visit("group-mappings", "/users/group-mappings/", "#group-mappings"),
            Visit("base-models", "/models/", guide="base-models"),
            Visit("base-model", f"/models/{job.base_model_id}/"),
            Visit("site-audit", "/audit/"),
            Visit("dossier-signing-key", "/dossier-signing-key/", "#key-fingerprint"),
        ],
        "": [Visit("login", "/login/", "#id_username"), Visit("invite-invalid", "/invite/bm9uZQ/not-a-token/")],
    }


def _trained(job: TrainingJob) -> None:
    """What a finished DPO run leaves: 30 steps of metrics (a learning rate decaying from 5e-5), a before and
    after evaluation and the last lines of its log."""
    steps = 30
    for step in range(1, steps + 1):
        values = {
            "loss": 0.69 - step * 0.01, "grad_norm": 1.5 + (step % 4) * 0.1,
            "learning_rate": 5e-5 * (1 - (step - 1) / steps),
            "rewards/chosen": step * 0.01, "rewards/rejected": -step * 0.008, "rewards/margins": step * 0.018,
            "rewards/accuracies": min(1.0, 0.5 + step / 60),
        }  # fmt: skip
        JobMetric.objects.create(job=job, step=step, values=values)
    JobMetric.objects.create(job=job, step=steps, phase="eval", values={"eval_loss": 0.41})
    for seq in range(40):
        line = f"train step {seq}/{steps} loss=0.{69 - seq} sha256=" + "9f" * 32
        JobLogLine.objects.create(job=job, seq=seq, line=line)
    TrainingJob.objects.filter(pk=job.pk).update(
        state="succeeded", step=steps, total_steps=steps, worker="gpu-worker-01.internal.example.org",
        evaluation={"before": {"preference_accuracy": 0.5, "mean_margin": 0.0},
                    "after": {"preference_accuracy": 0.75, "mean_margin": 0.3127}, "held_out_rows": 4},
    )  # fmt: skip


def _signed_in(browser: Any, base_url: str, username: str, width: int) -> Any:
    """A browser context already signed in as ``username`` (a session made by Django's test client, so no
    login page load per context)."""
    context = browser.new_context(viewport={"width": width, "height": 860}, base_url=base_url)
    if username:
        from accounts.models import User

        client = Client()
        client.force_login(User.objects.get(username=username))
        cookie = client.cookies["sessionid"]
        context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": base_url}])
    return context


def _check(page: Any, visit: Visit, width: int) -> list[str]:
    """Open the page and say what is wrong with it: overflow, axe findings."""
    response = page.goto(visit.path)
    page.wait_for_selector(visit.ready, state="attached")
    wrong = [] if response.status == visit.status else [f"answered {response.status}"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"pages-{visit.name}-{width}.png"), full_page=True)
    if guide := visit.guide if width == WIDTHS[0] else visit.guide_narrow:
        guide_picture(page, guide)
    scroll_width, window_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if scroll_width > window_width + 1:
        wrong.append(f"{scroll_width} px wide in a {window_width} px window")
    if visit.holds and not page.evaluate(visit.holds):
        wrong.append(f"does not hold: {visit.holds}")
    # Every rule at the first width; at the second, the rules that the layout can change.
    wrong += axe_findings(page, rules=() if width == WIDTHS[0] else LAYOUT_RULES)
    return [f"{visit.name} at {width} px: {w}" for w in wrong]


def test_it_fits_every_page_to_the_window_and_passes_axe(browser, live_server) -> None:  # type: ignore[no-untyped-def]
    visits = _product(make_personas())
    wrong: list[str] = []
    seen = 0
    for username, pages in visits.items():
        for width in WIDTHS:
            context = _signed_in(browser, live_server.url, username, width)
            page = context.new_page()
            problems = watch(page)
            for visit in pages:
                wrong += _check(page, visit, width)
                seen += 1
            settle(page)
            context.close()
            # The browser logs the 404 page's own status as an error: that one is expected.
            expected = [visit.path for visit in pages if visit.status == 404]
            problems = [problem for problem in problems if not any(path in problem for path in expected)]
            wrong += [f"{username or 'visitor'} at {width} px: {problem}" for problem in problems]
    assert seen == 2 * sum(len(pages) for pages in visits.values())
    assert wrong == [], "\n".join(wrong)


def test_it_keeps_the_answer_box_clear_of_the_conversation_on_a_phone(browser, live_server) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    give_rubric(personas.project, personas.data_lead)
    import_lines(personas.project, personas.data_lead, chat_line("Can I raise my transfer limit?", LONG_ANSWER))
    context = _signed_in(browser, live_server.url, "annotator", 390)
    page = context.new_page()
    problems = watch(page)
    page.goto(f"/projects/{personas.project.pk}/annotate/")
    page.wait_for_selector("#label-form[data-ready]")
    conversation = page.locator("#conversation")
    answer = page.locator("#id_response")

    def covered() -> str:
        """What the point at the answer box's centre belongs to, once it is scrolled into view."""
        answer.scroll_into_view_if_needed()
        return str(
            page.evaluate(
                """() => { const box = document.getElementById('id_response').getBoundingClientRect();
                const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
                return hit && (hit.id === 'id_response' || hit.closest('#id_response')) ? 'clear' : hit.outerHTML; }"""
            )
        )

    expect(conversation).to_have_attribute("open", "")
    expect(conversation).to_contain_text("Step 8")
    expect(answer).to_be_focused()
    assert page.evaluate("window.scrollY") == 0, "the focus in the answer box leaves the conversation in view"
    expect(answer).to_be_visible()
    assert covered() == "clear"
    box = conversation.bounding_box()
    below = answer.bounding_box()
    assert box is not None
    assert below is not None
    assert below["y"] >= box["y"] + box["height"], "stacked: the conversation above the answer"
    page.click("#conversation > summary")
    expect(conversation).not_to_have_attribute("open", "")
    expect(page.locator("#conversation .turn").first).to_be_hidden()
    assert covered() == "clear"
    page.click("#conversation > summary")
    expect(page.locator("#conversation .turn").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    settle(page)
    context.close()
    assert problems == [], problems


def test_it_lets_the_queued_message_go_once_the_job_runs(browser, live_server) -> None:  # type: ignore[no-untyped-def]
    """The message left by starting a job ("… is queued for a gpu worker") follows the job: when the page's
    status poll sees it running, the message goes, without a reload."""
    from django.contrib import messages
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.http import HttpRequest, HttpResponse

    personas = make_personas()
    matrix_adapter(personas)
    job: TrainingJob = personas.made["job"]
    TrainingJob.objects.filter(pk=job.pk).update(state="queued")
    # The message as the job form leaves it (the form itself would send the job to a real broker).
    storage = CookieStorage(HttpRequest())
    storage.add(messages.SUCCESS, f"{job} is queued for a gpu worker.", extra_tags="job-queued")
    response = HttpResponse()
    storage.update(response)
    context = _signed_in(browser, live_server.url, "project_admin", 390)
    cookie = response.cookies[storage.cookie_name]
    context.add_cookies([{"name": storage.cookie_name, "value": cookie.value, "url": live_server.url}])
    page = context.new_page()
    problems = watch(page)
    page.goto(f"/projects/{personas.project.pk}/training/{job.pk}/")
    banner = page.locator(".message.job-queued")
    expect(banner).to_contain_text("is queued for a gpu worker")
    expect(page.locator("#job-state")).to_have_text("Queued")
    TrainingJob.objects.filter(pk=job.pk).update(state="running", step=3, total_steps=30, phase="training")
    expect(page.locator("#job-state")).to_have_text("Running")
    expect(banner).to_have_count(0)
    settle(page)
    context.close()
    assert problems == [], problems
