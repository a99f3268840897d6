"""The evaluation pages: Evaluate against… from the adapter page, the form's refusals, the page while generating."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from evaluation.models import Evaluation
from tests.access_matrix import matrix_adapter
from tests.conftest import Personas
from tests.evaluation.judging_helpers import answered_evaluation

FORM = {"against": "base_model", "temperature": 0.7, "top_p": 0.95, "max_new_tokens": 64, "seed": 1}


def _admin(p: Personas) -> Client:
    client = Client()
    client.force_login(p.project_admin)
    return client


def test_it_offers_evaluate_against_on_the_adapter_page(personas: Personas) -> None:
    adapter = matrix_adapter(personas)
    client = _admin(personas)
    page = client.get(f"/projects/{personas.project.pk}/adapters/{adapter}/").content.decode()
    assert f"/projects/{personas.project.pk}/evaluations/new/?adapter={adapter}" in page
    form = client.get(f"/projects/{personas.project.pk}/evaluations/new/?adapter={adapter}").content.decode()
    assert f'<option value="{adapter}" selected>' in form


def test_it_shows_the_training_split_refusal_and_writes_nothing(personas: Personas) -> None:
    data = {**FORM, "adapter": matrix_adapter(personas), "source": "project_items"}
    response = _admin(personas).post(f"/projects/{personas.project.pk}/evaluations/new/", data)
    assert response.status_code == 400
    assert "prompts are in a training split" in response.content.decode()
    assert not Evaluation.objects.exists()


def test_it_names_the_bad_line_of_a_prompt_file(personas: Personas) -> None:
    upload = SimpleUploadedFile("prompts.jsonl", b'{"prompt": "Fine?"}\n{"nothing": 1}\n{"prompt": "Also fine?"}\n')
    data = {**FORM, "adapter": matrix_adapter(personas), "source": "upload", "upload": upload}
    data["fmt"] = "prompt_response_jsonl"
    response = _admin(personas).post(f"/projects/{personas.project.pk}/evaluations/new/", data)
    assert response.status_code == 400
    page = response.content.decode()
    assert "line 2:" in page
    assert "line 1" not in page
    assert "line 3" not in page
    assert not Evaluation.objects.exists()


def test_it_shows_the_runs_while_generating(personas: Personas) -> None:
    evaluation = answered_evaluation(personas, prompts=["One?", "Two?"], run_state="running")
    client = Client()
    client.force_login(personas.data_lead)
    listing = client.get(f"/projects/{personas.project.pk}/evaluations/").content.decode()
    assert evaluation.name in listing
    page = client.get(f"/projects/{personas.project.pk}/evaluations/{evaluation.pk}/").content.decode()
    assert "Generating answers" in page
    assert page.count('class="badge status-running"') == 1
    assert 'id="finish"' not in page
