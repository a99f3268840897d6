"""Comparisons in bulk through the API: a JSONL file to ``POST …/comparisons/`` (multipart), streamed, numbered
line by line, all or nothing, on a worker when large; and an import that is refused answers 422, not 201."""

import json
import subprocess
import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import AuditEvent
from annotation import importing
from annotation.models import ImportBatch, Item
from tests.conftest import ClientFor, Personas, make_personas
from tests.preferences.helpers import comparison_line


def _jsonl(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _lines(count: int) -> list[str]:
    return [
        comparison_line(f"Ticket {n}: why was I charged a fee of {n} on my account?", f"Because {n}.", f"No idea {n}.")
        for n in range(count)
    ]


@pytest.mark.django_db
def test_it_creates_comparisons_from_a_jsonl_file(personas: Personas, client_for: ClientFor) -> None:
    lead = client_for(personas.data_lead)
    path = f"/api/v1/projects/{personas.project.pk}/comparisons/"
    lines = [*_lines(3), comparison_line("Call me on +44 20 7946 0958?", "Sure.", "No.", gold=1)]
    answer = lead.post(path, {"file": SimpleUploadedFile("bank.jsonl", _jsonl(lines))})
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["status"] == "done"
    assert body["imported_count"] == 4
    assert body["source_name"] == "bank.jsonl"
    assert body["fmt"] == "comparison_jsonl"
    assert body["status_url"].endswith(f"/api/v1/projects/{personas.project.pk}/imports/{body['id']}/")
    assert body["progress"] is None, "a finished import has no progress to show"
    items = Item.objects.filter(project=personas.project, kind="comparison").order_by("id")
    assert items.count() == 4
    assert "[PHONE_1]" in items.last().messages[0]["content"]  # type: ignore[union-attr]
    assert items.last().gold == 0  # type: ignore[union-attr]


@pytest.mark.django_db
def test_it_refuses_a_file_with_bad_lines_with_their_numbers_and_imports_nothing(
    personas: Personas, client_for: ClientFor
) -> None:
    lead = client_for(personas.data_lead)
    path = f"/api/v1/projects/{personas.project.pk}/comparisons/"
    lines = _lines(6)
    lines[1] = json.dumps({"prompt": "Only one?", "candidates": [{"content": "Lonely"}]})
    lines[4] = '{"prompt": "cut off'
    answer = lead.post(path, {"file": SimpleUploadedFile("bad.jsonl", _jsonl(lines))})
    assert answer.status_code == 422
    body = answer.json()
    assert body["status"] == "refused"
    assert [e["line"] for e in body["errors"]] == [2, 5]
    assert all(e["reason"] for e in body["errors"])
    assert body["imported_count"] == 0
    assert ImportBatch.objects.get(pk=body["id"]).status == "refused"
    assert not Item.objects.filter(project=personas.project).exists(), "all or nothing"
    assert AuditEvent.objects.filter(action="import.refused", object_id=str(body["id"])).exists()
    skipped = lead.post(path, {"file": SimpleUploadedFile("bad.jsonl", _jsonl(lines)), "skip_bad_lines": "true"})
    assert skipped.status_code == 201
    assert skipped.json()["imported_count"] == 4


@pytest.mark.django_db
def test_it_answers_422_with_its_id_and_errors_for_a_refused_item_import(
    personas: Personas, client_for: ClientFor
) -> None:
    lead = client_for(personas.data_lead)
    path = f"/api/v1/projects/{personas.project.pk}/imports/"
    content = b'{"prompt": "Fine?", "response": "Yes."}\n{"prompt": ""}\n'
    answer = lead.post(path, {"file": SimpleUploadedFile("a.jsonl", content), "fmt": "prompt_response_jsonl"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["status"] == "refused"
    assert [e["line"] for e in body["errors"]] == [2]
    polled = lead.get(body["status_url"]).json()
    assert polled["status"] == "refused"
    assert polled["errors"] == body["errors"]


@pytest.mark.django_db
def test_it_still_takes_json_on_the_comparisons_route_and_documents_the_file(personas: Personas) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    post = schema["paths"]["/api/v1/projects/{id}/comparisons/"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert {"201", "202", "413", "422"} <= set(post["responses"])
    assert "IMPORT_MAX_MB" in post["description"]


def _poll(client: Client, url: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen_progress = False
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] not in {"queued", "running"}:
            body["seen_progress"] = seen_progress
            return body
        seen_progress = seen_progress or body["progress"] is not None
        time.sleep(0.3)
    pytest.fail(f"the import did not finish in {timeout} s")


@pytest.mark.worker
def test_it_loads_twenty_thousand_comparisons_in_one_call_on_the_worker(worker: subprocess.Popen[str]) -> None:
    personas = make_personas()
    client = Client()
    client.force_login(personas.data_lead)
    content = _jsonl(_lines(20_000))
    assert len(content) > importing.SYNC_IMPORT_BYTES, "large enough to go to the worker"
    answer = client.post(
        f"/api/v1/projects/{personas.project.pk}/comparisons/",
        {"file": SimpleUploadedFile("twenty-thousand.jsonl", content)},
    )
    assert answer.status_code == 202, answer.content
    queued = answer.json()
    assert queued["status"] in {"queued", "running"}
    assert answer["Location"] == queued["status_url"]
    assert queued["progress"] is not None, "a queued import shows its progress"
    done = _poll(client, queued["status_url"])
    assert done["status"] == "done", done["failure_reason"] or done["errors"][:3]
    assert done["imported_count"] == 20_000
    assert done["lines_read"] == 20_000
    assert Item.objects.filter(project=personas.project, kind="comparison").count() == 20_000


@pytest.mark.worker
def test_it_ends_a_large_file_with_bad_lines_refused_on_the_worker(worker: subprocess.Popen[str]) -> None:
    personas = make_personas()
    client = Client()
    client.force_login(personas.data_lead)
    lines = _lines(12_000)
    lines[9_999] = json.dumps({"prompt": "No candidates"})
    content = _jsonl(lines)
    answer = client.post(
        f"/api/v1/projects/{personas.project.pk}/comparisons/", {"file": SimpleUploadedFile("bad.jsonl", content)}
    )
    assert answer.status_code == 202
    done = _poll(client, answer.json()["status_url"])
    assert done["status"] == "refused"
    assert [e["line"] for e in done["errors"]] == [10_000]
    assert not Item.objects.filter(project=personas.project).exists()
