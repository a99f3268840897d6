import json
import re
import time

import pytest
from django.test import Client

from annotation import services
from annotation.models import Slot
from tests.annotation.helpers import chat_line, give_rubric, import_lines
from tests.conftest import ClientFor, Personas

pytestmark = pytest.mark.django_db


def test_it_shows_imported_markup_as_text_never_runs_it(personas: Personas, client_for: ClientFor) -> None:
    give_rubric(personas.project, personas.data_lead)
    import_lines(
        personas.project,
        personas.data_lead,
        chat_line('<script>alert("x")</script><img src=x onerror=alert(1)>', '<a href="javascript:alert(1)">hi</a>'),
    )
    body = client_for(personas.annotator).get(f"/projects/{personas.project.pk}/annotate/").content.decode()
    assert "<script>alert" not in body
    assert "<img src=x" not in body
    assert '<a href="javascript:' not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


def test_it_renders_and_sanitises_guidelines_markdown(personas: Personas, client_for: ClientFor) -> None:
    services.rubric_save(
        actor=personas.data_lead, project=personas.project,
        guidelines="**Be exact.** <script>alert(1)</script> [x](javascript:alert(1))",
        criteria=[{"name": "Ok", "scale": "pass_fail"}],
    )  # fmt: skip
    body = client_for(personas.annotator).get(f"/projects/{personas.project.pk}/rubric/").content.decode()
    assert "<strong>Be exact.</strong>" in body
    assert "<script>alert(1)</script>" not in body
    assert 'href="javascript:' not in body


def test_it_reports_bad_lines_by_number_on_the_import_page(personas: Personas, client_for: ClientFor) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.annotation.helpers import jsonl

    client = client_for(personas.data_lead)
    upload = SimpleUploadedFile("bad.jsonl", jsonl(chat_line("ok?"), "{oops", chat_line("fine?")))
    response = client.post(f"/projects/{personas.project.pk}/imports/", {"file": upload, "fmt": "chat_jsonl"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Nothing was imported because 1 line is bad" in page
    assert '<td class="num mono">2</td>' in page
    assert "invalid JSON" in page


def test_it_counts_work_by_state_on_the_dashboard(personas: Personas, client_for: ClientFor) -> None:
    give_rubric(personas.project, personas.data_lead)
    import_lines(personas.project, personas.data_lead, chat_line("one?"), chat_line("two?"))
    slot = services.item_next(user=personas.annotator, project=personas.project)
    assert slot is not None
    services.annotation_submit(
        user=personas.annotator, item=slot.item, response="r", scores={"correct": "pass", "helpful": "3"},
        flags=[], note="", time_spent_ms=1, submit_key="d",
    )  # fmt: skip
    body = client_for(personas.reviewer).get(f"/projects/{personas.project.pk}/").content.decode()
    assert '<span class="num">2</span><span class="label">items</span>' in body
    assert '<span class="num">1</span><span class="label">awaiting review</span>' in body
    assert "<td>annotator</td>" in body


def test_it_saves_criteria_and_explains_mistakes_in_the_rubric_table(personas: Personas, client_for: ClientFor) -> None:
    client = client_for(personas.data_lead)
    url = f"/projects/{personas.project.pk}/rubric/"
    bad = client.post(
        url, {"guidelines": "", "crit-1-name": "Tone", "crit-1-scale": "categories", "crit-1-categories": "one"}
    )
    assert bad.status_code == 400
    assert "needs at least two categories" in bad.content.decode()
    assert 'value="Tone"' in bad.content.decode(), "what was typed stays on the page"
    good = client.post(
        url,
        {
            "guidelines": "Be kind.",
            "crit-1-name": "Tone", "crit-1-scale": "categories", "crit-1-categories": "warm, neutral",
            "crit-1-required": "on",
            "crit-2-name": "Correct", "crit-2-scale": "pass_fail", "crit-2-weight": "2",
            "crit-3-name": "",
        },
    )  # fmt: skip
    assert good.status_code == 302
    from annotation.selectors import current_rubric

    rubric = current_rubric(personas.project)
    assert rubric is not None
    assert [(c["name"], c["scale"], c["categories"], c["required"], c["weight"]) for c in rubric.criteria] == [
        ("Tone", "categories", ["warm", "neutral"], True, 1.0),
        ("Correct", "pass_fail", [], False, 2.0),
    ]


def _annotating_two_items(personas: Personas, client_for: ClientFor) -> tuple[Client, Slot, str]:
    """Two items under a rubric; the annotator holds the first. Returns their client, slot and item address."""
    give_rubric(personas.project, personas.data_lead)
    import_lines(personas.project, personas.data_lead, chat_line("First question?"), chat_line("Second question?"))
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/annotate/")
    slot = personas.annotator.slots.get()
    return client, slot, f"/projects/{personas.project.pk}/annotate/{slot.item_id}/"


def test_it_says_nothing_was_saved_for_a_changed_submit_after_back(personas: Personas, client_for: ClientFor) -> None:
    client, slot, url = _annotating_two_items(personas, client_for)
    form = {"response": "The ideal answer.", "score_correct": "pass", "score_helpful": "4", "submit_key": "page-1"}
    response = client.post(url + "submit/", form, HTTP_HX_REQUEST="true")
    assert "Submitted. Here is the next one." in response.content.decode()

    restored = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true", follow=True)
    body = restored.content.decode()
    assert "<html" in body, "a history restore gets the whole page, not a fragment"
    assert f"You submitted item #{slot.item_id} already" in body

    response = client.post(url + "submit/", {**form, "response": "Changed after Back."}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "the changes made after submitting were not saved" in body
    assert 'class="notice warn" role="alert"' in body
    assert "Submitted. Here is the next one." not in body
    assert personas.annotator.annotations.get().response == "The ideal answer."


def test_it_shows_tabs_and_defaults_that_follow_the_kind_of_work_a_project_holds(
    personas: Personas, client_for: ClientFor
) -> None:
    from tests.preferences.helpers import make_comparisons

    lead, annotator = client_for(personas.data_lead), client_for(personas.annotator)
    tabs = annotator.get(f"/projects/{personas.project.pk}/").content.decode()
    assert ">Annotate</a>" in tabs, "nothing imported yet: both kinds of work are offered"
    assert ">Compare</a>" in tabs

    import_lines(personas.project, personas.data_lead, chat_line("What is an IBAN?"))
    tabs = annotator.get(f"/projects/{personas.project.pk}/").content.decode()
    assert ">Annotate</a>" in tabs
    assert ">Compare</a>" not in tabs
    assert ">Adjudicate</a>" not in tabs
    new_release = lead.get(f"/projects/{personas.project.pk}/releases/new/").content.decode()
    assert re.findall(r'name="kind" value="(\w+)"', new_release) == ["sft"], "an SFT project defines SFT releases"
    admin = client_for(personas.project_admin)
    new_job = admin.get(f"/projects/{personas.project.pk}/training/new/").content.decode()
    assert '<input type="hidden" name="kind" value="sft"' in new_job, "no release yet: the project's kind of job"
    assert 'id="field-packing" data-when="sft">' in new_job, "SFT options shown"
    assert 'id="field-beta" data-when="dpo kto" hidden>' in new_job, "DPO options hidden"
    assert 'id="no-release"' in new_job, "says a release must be built first"

    make_comparisons(personas.other_project, personas.data_lead, 1)
    client = client_for(personas.staff)
    tabs = client.get(f"/projects/{personas.other_project.pk}/").content.decode()
    assert ">Compare</a>" in tabs
    assert ">Annotate</a>" not in tabs
    assert ">Review</a>" not in tabs
    assert ">Start comparing</a>" in tabs, "the overview's buttons follow the work too"
    assert ">Adjudication queue</a>" in tabs
    assert "Start annotating" not in tabs
    assert 'id="annotators"' not in tabs, "no table of SFT annotations in a project of comparisons"
    sft_overview = annotator.get(f"/projects/{personas.project.pk}/").content.decode()
    assert ">Start annotating</a>" in sft_overview
    assert "Start comparing" not in sft_overview


def test_it_handles_work_in_another_tab_a_lost_lease_and_a_signed_out_user(
    personas: Personas, client_for: ClientFor
) -> None:
    """What a page open on an item is told when the item was submitted elsewhere, when its lease went to
    someone else, and when the user was signed out meanwhile."""
    client, _slot, url = _annotating_two_items(personas, client_for)
    form = {"response": "The ideal answer.", "score_correct": "pass", "score_helpful": "4"}
    assert client.post(url + "submit/", {**form, "submit_key": "tab-1"}, HTTP_HX_REQUEST="true").status_code == 200
    other_tab = client.post(url + "submit/", {**form, "submit_key": "tab-2"}, HTTP_HX_REQUEST="true")
    body = other_tab.content.decode()
    assert "You already submitted this item (in another tab or window)." in body
    assert 'class="notice warn" role="alert"' in body, "the other tab moves on to the next item with a warning"
    assert personas.annotator.annotations.count() == 1

    second = personas.annotator.slots.get(state="leased")
    draft_url = f"/projects/{personas.project.pk}/annotate/{second.item_id}/draft/"
    assert "Draft saved" in client.post(draft_url, {"response": "Half"}, HTTP_HX_REQUEST="true").content.decode()
    Slot.objects.filter(pk=second.pk).update(user=personas.reviewer)  # the lease ran out and the reviewer took it
    lost = client.post(draft_url, {"response": "Half an answer"}, HTTP_HX_REQUEST="true").content.decode()
    assert "went to someone else after your lease ran out" in lost

    client.logout()
    signed_out = client.post(draft_url, {"response": "More"}, HTTP_HX_REQUEST="true")
    assert signed_out.status_code == 401, "htmx gets 401, not the login page swapped into the form"
    assert signed_out["X-Login-Url"] == "/login/"
    page_load = client.get(url)
    assert page_load.status_code == 302, "a whole page still goes to the login page"
    assert page_load["Location"].startswith("/login/")


def test_it_tells_an_older_tab_its_autosave_was_refused(personas: Personas, client_for: ClientFor) -> None:
    give_rubric(personas.project, personas.data_lead)
    import_lines(personas.project, personas.data_lead, chat_line("First question?"))
    client = client_for(personas.annotator)
    first_tab = client.get(f"/projects/{personas.project.pk}/annotate/").content.decode()
    older = re.search(r'name="page" value="([^"]+)"', first_tab)
    assert older is not None
    time.sleep(0.01)
    slot = personas.annotator.slots.get()
    second_tab = client.get(f"/projects/{personas.project.pk}/annotate/{slot.item_id}/").content.decode()
    newer = re.search(r'name="page" value="([^"]+)"', second_tab)
    assert newer is not None
    draft_url = f"/projects/{personas.project.pk}/annotate/{slot.item_id}/draft/"
    saved = client.post(draft_url, {"response": "From the newer tab", "page": newer[1]}, HTTP_HX_REQUEST="true")
    assert "Draft saved" in saved.content.decode()
    stale = client.post(draft_url, {"response": "From the older tab", "page": older[1]}, HTTP_HX_REQUEST="true")
    assert "also open in another tab" in stale.content.decode()
    assert personas.annotator.drafts.get().data["response"] == "From the newer tab"


def test_it_sets_the_phone_region_and_what_happens_to_uncertain_values_on_the_settings_page(
    personas: Personas, client_for: ClientFor
) -> None:
    from annotation.models import AnnotationSettings

    client = client_for(personas.data_lead)
    url = f"/projects/{personas.project.pk}/annotation-settings/"
    page = client.get(url).content.decode()
    assert 'name="pii_uncertain"' in page
    assert 'name="pii_phone_region"' in page
    form = {"annotators_per_item": 1, "lease_minutes": 30, "pii_mode": "replace", "pii_uncertain": "keep"}
    client.post(url, {**form, "pii_phone_region": "fr"})
    current = AnnotationSettings.objects.get(project=personas.project)
    assert (current.pii_uncertain, current.pii_phone_region) == ("keep", "FR")
    refused = client.post(url, {**form, "pii_phone_region": "XX"}).content.decode()
    assert "Unknown phone region" in refused
    current.refresh_from_db()
    assert current.pii_phone_region == "FR"
    # A region cleared on the form is refused, not quietly left as it was.
    cleared = client.post(url, {**form, "pii_phone_region": ""})
    assert "Give a country code such as GB or DE." in cleared.content.decode()
    assert "Settings saved" not in cleared.content.decode()
    current.refresh_from_db()
    assert current.pii_phone_region == "FR"


def test_it_lists_uncertain_values_in_the_import_report_on_the_page_and_in_the_api(
    personas: Personas, client_for: ClientFor
) -> None:
    services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=1, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[], pii_phone_region="ES",
    )  # fmt: skip
    batch = import_lines(personas.project, personas.data_lead, chat_line("Hola"), chat_line("Details: 412 345 670"))
    client = client_for(personas.data_lead)
    page = client.get(f"/projects/{personas.project.pk}/imports/{batch.pk}/").content.decode()
    assert 'id="import-uncertain"' in page
    assert "412 345 670" not in page
    body = client.get(f"/api/v1/projects/{personas.project.pk}/imports/{batch.pk}/").json()
    assert body["uncertain_count"] == 1
    assert body["uncertain"] == [
        {"line": 2, "type": "PHONE", "turn": 0, "column": 9, "hint": "••• ••• •••", "scrubbed": True}
    ]
    assert "412 345 670" not in json.dumps(body)
