"""Defining generation runs without a worker: what is refused (with the reason, nothing written), uploaded
prompt files checked and scrubbed like imports, the decoding settings, cancelling, and the reaper."""

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from annotation.models import AnnotationSettings
from core.errors import DomainError
from evaluation import services
from evaluation.decoding import Decoding
from evaluation.models import GenerationPrompt, GenerationRun
from tests.access_matrix import matrix_adapter
from tests.annotation.helpers import give_rubric, import_items
from tests.conftest import Personas
from training.models import Adapter, BaseModel

PROMPT = [{"messages": [{"role": "user", "content": "Which fee applies?"}]}]


def _model(personas: Personas, name: str = "ready", state: str = "ready", **values: object) -> BaseModel:
    return BaseModel.objects.create(
        name=name, path=f"/models/{name}", state=state, content_hash=name[0] * 64, registered_by=personas.staff,
        **values,
    )  # fmt: skip


def _nothing_written() -> None:
    assert not GenerationRun.objects.exists()
    assert not GenerationPrompt.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="evaluation.").exists()


def _upload(*lines: str) -> io.BytesIO:
    return io.BytesIO("".join(line + "\n" for line in lines).encode())


def test_it_refuses_a_base_model_that_is_not_ready_naming_the_reason(personas: Personas) -> None:
    broken = _model(personas, "broken", state="invalid", failure_reason="/models/broken has no config.json.")
    with pytest.raises(DomainError) as refused:
        services.generation_run_create(
            actor=personas.project_admin, project=personas.project, base_model=broken, source="upload",
            prompts=PROMPT, decoding={},
        )  # fmt: skip
    assert refused.value.message == "The base model broken is not ready (invalid): /models/broken has no config.json."
    assert refused.value.field == "base_model"
    _nothing_written()


def test_it_refuses_an_adapter_of_another_base_model(personas: Personas) -> None:
    adapter = Adapter.objects.get(pk=matrix_adapter(personas))
    other = _model(personas, "other")
    with pytest.raises(DomainError, match="was trained on matrix-model, not on other"):
        services.generation_run_create(
            actor=personas.project_admin, project=personas.project, base_model=other, adapter=adapter,
            source="upload", prompts=PROMPT, decoding={},
        )  # fmt: skip
    _nothing_written()


def test_it_refuses_an_adapter_whose_base_model_changed(personas: Personas) -> None:
    adapter = Adapter.objects.get(pk=matrix_adapter(personas))
    BaseModel.objects.filter(pk=adapter.base_model_id).update(content_hash="e" * 64)
    checked_again = BaseModel.objects.get(pk=adapter.base_model_id)
    with pytest.raises(DomainError, match="has changed since"):
        services.generation_run_create(
            actor=personas.project_admin, project=personas.project, base_model=checked_again, adapter=adapter,
            source="upload", prompts=PROMPT, decoding={},
        )  # fmt: skip
    _nothing_written()


def test_it_refuses_an_upload_with_unusable_lines_naming_each(personas: Personas) -> None:
    upload = _upload(
        json.dumps({"messages": [{"role": "user", "content": "Fine?"}]}),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "Also fine?"}]}),
        json.dumps({"prompt": "wrong format for chat"}),
    )
    with pytest.raises(DomainError) as refused:
        services.generation_run_start(
            actor=personas.project_admin, project=personas.project, base_model=_model(personas), adapter=None,
            source="upload", upload=upload, fmt="chat_jsonl", source_name="prompts.jsonl", decoding={},
        )  # fmt: skip
    message = refused.value.message
    assert message.startswith("prompts.jsonl has 2 unusable lines; nothing was started. line 2: ")
    assert "; line 4: missing field 'messages'" in message
    assert refused.value.field == "file"
    _nothing_written()


def test_it_scrubs_uploaded_prompts_and_refuses_pii_where_the_policy_rejects_it(personas: Personas) -> None:
    line = json.dumps({"prompt": "Write to jane@example.com about it", "id": "p1", "metadata": {"topic": "fees"}})
    run = services.generation_run_start(
        actor=personas.project_admin, project=personas.project, base_model=_model(personas), adapter=None,
        source="upload", upload=_upload(line), fmt="prompt_response_jsonl", source_name="p.jsonl", decoding={},
    )  # fmt: skip
    prompt = GenerationPrompt.objects.get(run=run)
    assert prompt.messages == [{"role": "user", "content": "Write to [EMAIL_1] about it"}]
    assert (prompt.external_id, prompt.metadata, run.source_name) == ("p1", {"topic": "fees"}, "p.jsonl")
    assert len(prompt.digest) == 32

    AnnotationSettings.objects.update_or_create(project=personas.project, defaults={"pii_mode": "reject"})
    with pytest.raises(DomainError, match="line 1: contains PII"):
        services.generation_run_start(
            actor=personas.project_admin, project=personas.project, base_model=_model(personas, "second"),
            adapter=None, source="upload", upload=_upload(line), fmt="prompt_response_jsonl", decoding={},
        )  # fmt: skip
    assert GenerationRun.objects.count() == 1


def test_it_takes_prompts_from_imported_items_without_their_answers(personas: Personas) -> None:
    give_rubric(personas.project, personas.data_lead)
    items = import_items(personas.project, personas.data_lead, 2)
    run = services.generation_run_start(
        actor=personas.project_admin, project=personas.project, base_model=_model(personas), adapter=None,
        source="project_items", limit=10, decoding={"max_new_tokens": 4},
    )  # fmt: skip
    prompts = list(GenerationPrompt.objects.filter(run=run))
    assert [(p.index, p.item_id) for p in prompts] == [(n, item.pk) for n, item in enumerate(items)]
    assert all(p.item_id is not None and p.messages[-1]["role"] == "user" for p in prompts)
    assert run.decoding == {**Decoding().as_dict(), "max_new_tokens": 4}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"temperature": -1}, "temperature"),
        ({"candidates": 2}, "temperature"),  # several candidates with greedy decoding
        ({"max_new_tokens": 1.5}, "max_new_tokens"),
        ({"top_p": "a lot"}, "top_p"),
        ({"beams": 4}, "beams"),
    ],
)
def test_it_refuses_bad_decoding_settings(values: dict[str, object], field: str) -> None:
    with pytest.raises(DomainError) as refused:
        Decoding.from_input(values)
    assert refused.value.field == field


def test_it_cancels_a_queued_run_and_refuses_to_cancel_it_again(personas: Personas) -> None:
    run = services.generation_run_create(
        actor=personas.project_admin, project=personas.project, base_model=_model(personas), source="upload",
        prompts=PROMPT, decoding={},
    )  # fmt: skip
    run = services.generation_run_cancel(actor=personas.project_admin, run=run)
    assert run.state == "cancelled"
    assert run.failure_reason == "Cancelled by project_admin before it started."
    with pytest.raises(DomainError) as refused:
        services.generation_run_cancel(actor=personas.project_admin, run=run)
    assert refused.value.status == 409


def test_it_fails_a_run_whose_worker_went_silent(personas: Personas) -> None:
    run = services.generation_run_create(
        actor=personas.project_admin, project=personas.project, base_model=_model(personas), source="upload",
        prompts=PROMPT, decoding={},
    )  # fmt: skip
    GenerationRun.objects.filter(pk=run.pk).update(
        state="running", worker="gpu@node", heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert services.generation_runs_reap() == [run.pk]
    run.refresh_from_db()
    assert run.state == "failed"
    assert run.failure_reason.startswith("Worker lost: the gpu worker gpu@node stopped supervising this run")


def test_it_answers_the_api_refusal_with_the_reason(personas: Personas) -> None:
    broken = _model(personas, "broken", state="validating")
    client = Client()
    client.force_login(personas.project_admin)
    response = client.post(
        f"/api/v1/projects/{personas.project.pk}/generation-runs/",
        data=json.dumps({"base_model": broken.pk, "source": "project_items"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "The base model broken is not ready (validating)" in response.content.decode()
    _nothing_written()


def test_it_takes_a_prompt_file_through_the_api_and_refuses_bad_lines_by_number(personas: Personas) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    model = _model(personas)
    client = Client()
    client.force_login(personas.project_admin)
    url = f"/api/v1/projects/{personas.project.pk}/generation-runs/"
    good = json.dumps({"messages": [{"role": "user", "content": "Fine?"}]})
    bad = SimpleUploadedFile("bad.jsonl", f"{good}\n[1, 2]\n".encode())
    refused = client.post(url, {"base_model": model.pk, "file": bad, "fmt": "chat_jsonl"})
    assert refused.status_code == 400
    assert "bad.jsonl has 1 unusable line; nothing was started. line 2: " in refused.json()["detail"]
    _nothing_written()

    upload = SimpleUploadedFile("good.jsonl", f"{good}\n".encode())
    # No adapter, as a browser's FormData.append("adapter", null) sends it: the word null.
    body = {
        "base_model": model.pk,
        "adapter": "null",
        "file": upload,
        "fmt": "chat_jsonl",
        "decoding": '{"max_new_tokens": 16}',
    }
    accepted = client.post(url, body)
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["adapter"] is None
    assert accepted.json()["source"] == "upload"
    assert accepted.json()["source_name"] == "good.jsonl"
    assert accepted.json()["decoding"]["max_new_tokens"] == 16


def test_it_names_the_format_that_fits_a_prompt_file_sent_as_the_other(personas: Personas) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    model = _model(personas)
    client = Client()
    client.force_login(personas.project_admin)
    url = f"/api/v1/projects/{personas.project.pk}/generation-runs/"
    lines = b'{"prompt": "Which fee applies abroad?"}\n{"prompt": "Can I freeze my card?", "response": "Yes."}\n'
    refused = client.post(
        url, {"base_model": model.pk, "file": SimpleUploadedFile("p.jsonl", lines), "fmt": "chat_jsonl"}
    )
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "p.jsonl has 2 unusable lines; nothing was started. Every line reads as prompt JSONL" in detail
    assert "line 1: " in detail
    _nothing_written()

    fmt = "prompt_response_jsonl"
    taken = client.post(url, {"base_model": model.pk, "file": SimpleUploadedFile("p.jsonl", lines), "fmt": fmt})
    assert taken.status_code == 202, taken.content
    assert taken.json()["prompt_count"] == 2


def test_it_tells_its_evaluation_when_a_run_ends_once_committed(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    from evaluation.models import Evaluation

    evaluation = Evaluation.objects.create(
        project=personas.project, name="blind", decoding={}, created_by=personas.project_admin
    )
    runs = [
        services.generation_run_create(
            actor=personas.project_admin,
            project=personas.project,
            base_model=_model(personas, name),
            source="release_eval",
            prompts=PROMPT,
            decoding={},
            evaluation=owner,
        )
        for name, owner in (("alone", None), ("judged", evaluation))
    ]
    GenerationRun.objects.update(state="running")
    for run in runs:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.generation_run_finish(run=run, state="failed", reason="The generating process failed.")
        # The follow-up word (for a round waiting on the run) goes out for every run; the evaluation's only for its own.
        assert len(callbacks) == (2 if run.evaluation_id else 1), run
    assert GenerationRun.objects.filter(state="failed").count() == 2


def test_it_lists_runs_and_candidates_in_a_fixed_number_of_queries(
    personas: Personas, django_assert_max_num_queries: Any
) -> None:
    from evaluation.models import Candidate

    model = _model(personas)
    prompts = [{"messages": [{"role": "user", "content": f"Question {n}?"}]} for n in range(20)]
    for _ in range(3):
        run = services.generation_run_create(
            actor=personas.project_admin, project=personas.project, base_model=model, source="upload",
            prompts=prompts, decoding={},
        )  # fmt: skip
    Candidate.objects.bulk_create(
        Candidate(run=run, prompt=prompt, sample=0, text="An answer.", seed=42, prompt_tokens=3, completion_tokens=2,
                  seconds=0.01, finish_reason="stop")
        for prompt in run.prompts.all()
    )  # fmt: skip
    client = Client()
    client.force_login(personas.data_lead)
    base = f"/api/v1/projects/{personas.project.pk}/generation-runs/"
    with django_assert_max_num_queries(12):
        listed = client.get(base)
    assert listed.json()["count"] == 3
    with django_assert_max_num_queries(12):
        answers = client.get(f"{base}{run.pk}/candidates/")
    assert [row["prompt_index"] for row in answers.json()["results"]] == list(range(20))
    assert answers.json()["results"][0]["provenance"]["base_model_hash"] == model.content_hash
