"""Stored content that carries markup is shown as text on every page that renders it, in a real Chromium: no
script runs, no dialog opens, and no payload becomes an element, a handler or a javascript: link."""

import io
import json
import uuid
from dataclasses import dataclass

import pytest

from accounts import services as account_services
from accounts.models import User
from annotation import services as annotation_services
from annotation.models import Annotation, ImportBatch, Item
from preferences.adjudication import adjudication_create
from preferences.models import Adjudication, Judgement
from preferences.results import display_order
from releases.models import Release
from tests.browser.conftest import log_in, screenshot
from tests.conftest import Personas, make_personas
from tests.preferences.helpers import comparison_line, import_comparisons
from tests.releases.helpers import build
from tests.releases.test_build import PROMPTS, judged

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>window.__xss=1</script>"
IMG = '"><img src=x onerror="window.__xss=1">'
SVG = "<svg onload=window.__xss=1>"
LINK = "[click](javascript:window.__xss=1)"
EVIL = f"{SCRIPT} {IMG} {SVG} {LINK}"

# Everything that would show a payload turned into markup or behaviour: a handler attribute (our templates
# have none: the CSP allows no inline code), a javascript: URL, or one of the payload's own elements.
INERT_CHECK = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const value = attr.value.trim().toLowerCase();
      if (attr.name.startsWith('on')) found.push(`${el.tagName} ${attr.name}`);
      if (['href', 'src', 'action', 'formaction', 'xlink:href'].includes(attr.name) && value.startsWith('javascript:'))
        found.push(`${el.tagName} ${attr.name}=${value}`);
    }
  }
  for (const el of document.querySelectorAll('img[src="x"], svg[onload]')) found.push(el.outerHTML);
  for (const el of document.querySelectorAll('script:not([src])'))
    if (el.textContent.includes('__xss')) found.push(el.outerHTML);
  return {found, xss: typeof window.__xss};
}"""


@dataclass
class Seeded:
    annotation: Annotation
    adjudication: Adjudication
    release: Release
    batch: ImportBatch


def _seed(p: Personas) -> Seeded:
    """Every field a person or an import file fills in, carrying the payloads, through the services."""
    account_services.project_update(
        actor=p.project_admin, project=p.project, name=f"Project {EVIL}", description=f"About {EVIL}"
    )
    User.objects.filter(pk=p.annotator.pk).update(display_name=f"Ann {SCRIPT} {IMG}")
    annotation_services.rubric_save(
        actor=p.data_lead,
        project=p.project,
        guidelines=f'Guidelines {EVIL}\n\n<a href="javascript:window.__xss=1">raw link</a>',
        criteria=[
            {"name": f"Correct {SCRIPT}", "key": "correct", "scale": "pass_fail", "required": True},
            {"name": f"Tone {IMG}", "key": "tone", "scale": "categories", "categories": [SVG, LINK], "required": False},
        ],
    )
    sft = annotation_services.import_start(
        actor=p.data_lead,
        project=p.project,
        upload=_jsonl(*[_chat(f"Question {n} {EVIL}", f"Answer {EVIL}") for n in range(2)]),
        source_name=f"{IMG}{SCRIPT}.jsonl",
        fmt="chat_jsonl",
    )
    assert sft.status == "done", sft.errors
    slot = annotation_services.item_next(user=p.annotator, project=p.project)
    assert slot is not None
    annotation = annotation_services.annotation_submit(
        user=p.annotator,
        item=slot.item,
        response=f"Edited {EVIL}",
        scores={"correct": "pass"},
        flags=[],
        note=f"Note {EVIL}",
        time_spent_ms=9000,
        submit_key=uuid.uuid4().hex,
    )
    batch = import_comparisons(
        p.project, p.data_lead, *[comparison_line(f"Prompt {n} {EVIL}", f"One {EVIL}", f"Two {EVIL}") for n in range(2)]
    )
    assert batch.status == "done", batch.errors
    ImportBatch.objects.filter(pk=batch.pk).update(source_name=f"{SVG}{LINK}.jsonl")
    disputed = Item.objects.filter(batch=batch).order_by("id").first()
    assert disputed is not None
    for user, winner in ((p.reviewer, 0), (p.project_admin, 1)):
        seed, order = display_order(user, disputed)
        result = {"winner": winner, "strength": 3}
        Judgement.objects.create(
            item=disputed, annotator=user, mode="pairwise", seed=seed, displayed_order=order, result=result,
            displayed_result=result, rationale=f"Because {EVIL}", time_spent_ms=5000, idempotency_key=uuid.uuid4().hex,
        )  # fmt: skip
    adjudication = adjudication_create(disputed, agreement=0.0)
    judged(p, PROMPTS[:6])  # after ours, so the annotator's queue serves ours first
    assert adjudication is not None
    release = build(p.project, p.data_lead, name=f"{SCRIPT}{IMG}{SVG}"[:100])
    return Seeded(annotation=annotation, adjudication=adjudication, release=release, batch=sft)


def _chat(question: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})


def _jsonl(*lines: str) -> io.BytesIO:
    return io.BytesIO(("\n".join(lines) + "\n").encode())


def _visit(page, path: str, *texts: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(path)
    page.wait_for_load_state("networkidle")
    state = page.evaluate(INERT_CHECK)
    assert state == {"found": [], "xss": "undefined"}, f"{path}: {state}"
    body = page.inner_text("body")
    for text in texts:
        assert text in body, f"{path} does not show {text!r} as text"


def test_it_shows_stored_markup_as_text_on_every_page(page) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    made = _seed(personas)
    annotation, adjudication, release, batch = made.annotation, made.adjudication, made.release, made.batch
    dialogs: list[str] = []

    def dismiss(dialog) -> None:  # type: ignore[no-untyped-def]
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    pk = personas.project.pk

    log_in(page, "annotator")
    _visit(page, "/", SCRIPT, IMG)
    _visit(page, f"/projects/{pk}/", SCRIPT)
    _visit(page, f"/projects/{pk}/annotate/", f"Question 1 {SCRIPT}", f"Correct {SCRIPT}", SVG, LINK)
    screenshot(page, "stored-content-annotate")
    _visit(page, f"/projects/{pk}/compare/", f"Prompt 0 {SCRIPT}", f"One {SCRIPT}")
    screenshot(page, "stored-content-compare")

    page.context.clear_cookies()
    log_in(page, "staff")
    _visit(page, f"/projects/{pk}/review/", SCRIPT)
    _visit(page, f"/projects/{pk}/review/{annotation.pk}/", f"Note {SCRIPT}", f"Question 0 {SCRIPT}")
    _visit(page, f"/projects/{pk}/adjudication/", SCRIPT)
    _visit(page, f"/projects/{pk}/adjudication/{adjudication.pk}/", f"Because {SCRIPT}", SCRIPT)
    _visit(page, f"/projects/{pk}/quality/", SCRIPT)
    _visit(page, f"/projects/{pk}/releases/", release.name)
    _visit(page, f"/projects/{pk}/releases/{release.pk}/", release.name, SCRIPT)
    screenshot(page, "stored-content-release")
    _visit(page, f"/projects/{pk}/imports/", f"{IMG}{SCRIPT}.jsonl", f"{SVG}{LINK}.jsonl")
    _visit(page, f"/projects/{pk}/imports/{batch.pk}/", f"{IMG}{SCRIPT}.jsonl")
    _visit(page, f"/projects/{pk}/rubric/", f"Correct {SCRIPT}")
    _visit(page, f"/projects/{pk}/members/", f"Ann {SCRIPT} {IMG}")
    _visit(page, f"/projects/{pk}/audit/", SCRIPT)
    _visit(page, "/audit/", SCRIPT)
    _visit(page, "/users/", f"Ann {SCRIPT} {IMG}")
    _visit(page, f"/projects/{pk}/training/", SCRIPT)
    _visit(page, f"/projects/{pk}/training/new/", release.name)
    assert dialogs == []
