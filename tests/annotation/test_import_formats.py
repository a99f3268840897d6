"""The formats an import offers and takes follow the project's work: comparisons, or conversations to annotate."""

import re

from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import ImportBatch
from tests.annotation.helpers import chat_line, import_lines, jsonl
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import comparison_line, make_comparisons


def _format_options(page: str) -> list[str]:
    return re.findall(r'<input type="radio" name="fmt" value="([^"]+)"', page)


def test_it_offers_the_formats_of_the_projects_work_the_usual_one_first(
    personas: Personas, client_for: ClientFor
) -> None:
    lead = client_for(personas.data_lead)
    url = f"/projects/{personas.project.pk}/imports/"
    fresh = lead.get(url).content.decode()
    peers = ["label_studio_json", "argilla_disk", "openassistant_trees"]
    assert _format_options(fresh) == ["chat_jsonl", "prompt_response_jsonl", "csv", "comparison_jsonl", *peers]
    assert 'id="field-csv_prompt" data-when="csv" hidden>' in fresh, "CSV columns only for CSV"

    make_comparisons(personas.project, personas.data_lead, 1)
    comparisons = lead.get(url).content.decode()
    assert _format_options(comparisons) == ["comparison_jsonl", *peers]
    assert 'name="purpose"' not in comparisons, "no SFT mix-in in a project of comparisons"
    assert 'name="csv_prompt"' not in comparisons
    assert "<h2>Import comparisons</h2>" in comparisons

    import_lines(personas.other_project, personas.data_lead, chat_line("What is an IBAN?"))
    sft = client_for(personas.staff).get(f"/projects/{personas.other_project.pk}/imports/").content.decode()
    assert _format_options(sft) == ["chat_jsonl", "prompt_response_jsonl", "csv", *peers[:2]]
    assert 'id="field-purpose" data-when="chat_jsonl prompt_response_jsonl csv">' in sft


def test_it_refuses_a_format_that_does_not_fit_on_the_page_and_in_the_api(
    personas: Personas, client_for: ClientFor
) -> None:
    make_comparisons(personas.project, personas.data_lead, 1)
    lead = client_for(personas.data_lead)
    before = ImportBatch.objects.count()
    page = lead.post(
        f"/projects/{personas.project.pk}/imports/",
        {"file": SimpleUploadedFile("chats.jsonl", jsonl(chat_line("Hi?"))), "fmt": "chat_jsonl"},
    )
    assert page.status_code == 400
    assert "This project holds comparisons: import them as comparison JSONL." in page.content.decode()
    api = lead.post(
        f"/api/v1/projects/{personas.project.pk}/imports/",
        {"file": SimpleUploadedFile("chats.jsonl", jsonl(chat_line("Hi?"))), "fmt": "chat_jsonl"},
    )
    assert api.status_code == 400
    assert (api.json()["field"], api.json()["detail"].split(":")[0]) == ("fmt", "This project holds comparisons")

    import_lines(personas.other_project, personas.data_lead, chat_line("What is an IBAN?"))
    staff = client_for(personas.staff)
    body = {"comparisons": [{"prompt": "Which?", "candidates": [{"content": "A"}, {"content": "B"}]}]}
    into_sft = staff.post(
        f"/api/v1/projects/{personas.other_project.pk}/comparisons/", body, content_type="application/json"
    )
    assert into_sft.status_code == 400
    assert into_sft.json()["detail"].startswith("This project holds conversations to annotate (SFT)")
    upload = staff.post(
        f"/projects/{personas.other_project.pk}/imports/",
        {"file": SimpleUploadedFile("c.jsonl", jsonl(comparison_line("Which?", "A", "B"))), "fmt": "comparison_jsonl"},
    )
    assert upload.status_code == 400
    assert ImportBatch.objects.count() == before + 1, "only the SFT project's own import"
