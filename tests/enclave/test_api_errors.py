"""Every API error answers JSON a client can read: 413 naming the limit for a body too large, 415 for a content
type the route does not take, 400 for malformed JSON or a malformed request; never an HTML page, never an ERROR
with a traceback in the log for a client's mistake. Tried with Django's test client and, for the body limits,
with a real HTTP client against a live server (Django's threaded server and gunicorn, the production one)."""

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.services import api_token_create
from annotation.models import ImportBatch
from tests.conftest import ClientFor, Personas, make_personas
from tests.workers import ROOT, worker_env

JSON_LIMIT = 2_621_440
FMT = "prompt_response_jsonl"


def _comparisons_body(size: int) -> bytes:
    """A valid comparisons request of about ``size`` bytes."""
    one = {"prompt": "Which answer explains the fee? " + "x" * 900, "candidates": [{"content": "A"}, {"content": "B"}]}
    count = size // (len(json.dumps(one)) + 2) + 1
    return json.dumps({"comparisons": [one] * count}).encode()


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.django_db
def test_it_answers_413_naming_the_limit_for_a_json_body_over_it(
    personas: Personas, client_for: ClientFor, caplog: pytest.LogCaptureFixture
) -> None:
    lead = client_for(personas.data_lead)
    body = _comparisons_body(3 * 1024 * 1024)
    path = f"/api/v1/projects/{personas.project.pk}/comparisons/"
    answer = lead.post(path, data=body, content_type="application/json")
    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/json"
    refusal = answer.json()
    assert refusal["limit_bytes"] == JSON_LIMIT == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert "2,621,440 bytes" in refusal["detail"]
    assert f"{len(body):,}" in refusal["detail"], "says how large the body was"
    assert "JSONL" in refusal["detail"], "and what to do instead"
    assert not ImportBatch.objects.exists()
    _no_errors_logged(caplog)


@pytest.mark.django_db
def test_it_answers_413_when_the_form_fields_of_an_upload_are_over_the_json_limit(
    personas: Personas, client_for: ClientFor, caplog: pytest.LogCaptureFixture
) -> None:
    """Form fields of a multipart upload count against the JSON limit (files do not): Django raises while
    parsing, inside the view."""
    lead = client_for(personas.data_lead)
    upload = SimpleUploadedFile("a.jsonl", b'{"prompt": "Hi", "response": "Hello"}\n')
    answer = lead.post(
        f"/api/v1/projects/{personas.project.pk}/imports/",
        {"file": upload, "fmt": "prompt_response_jsonl", "csv_prompt": "p" * (3 * 1024 * 1024)},
    )
    assert answer.status_code == 413
    assert answer.json()["limit_bytes"] == JSON_LIMIT
    _no_errors_logged(caplog)


@pytest.mark.django_db
def test_it_answers_413_naming_the_import_limit_for_an_upload_over_it(
    personas: Personas, client_for: ClientFor, settings: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    settings.IMPORT_MAX_BYTES = 1024 * 1024
    lead = client_for(personas.data_lead)
    line = b'{"prompt": "How do I close my account?", "response": "Visit a branch."}\n'
    big = SimpleUploadedFile("big.jsonl", line * (2 * 1024 * 1024 // len(line)))
    answer = lead.post(f"/api/v1/projects/{personas.project.pk}/imports/", {"file": big, "fmt": FMT})
    assert answer.status_code == 413
    assert answer.json()["limit_bytes"] == 1024 * 1024
    assert "IMPORT_MAX_MB" in answer.json()["detail"]
    assert not ImportBatch.objects.exists(), "nothing stored"
    small = SimpleUploadedFile("small.jsonl", line * 10)
    accepted = lead.post(f"/api/v1/projects/{personas.project.pk}/imports/", {"file": small, "fmt": FMT})
    assert accepted.status_code == 201, "an upload under the import limit still imports"
    _no_errors_logged(caplog)


def test_it_sets_the_import_limit_larger_than_the_json_limit_by_default() -> None:
    assert settings.IMPORT_MAX_BYTES >= 100 * settings.DATA_UPLOAD_MAX_MEMORY_SIZE


@pytest.mark.django_db
def test_it_answers_415_for_a_content_type_the_route_does_not_take(personas: Personas, client_for: ClientFor) -> None:
    lead = client_for(personas.data_lead)
    base = f"/api/v1/projects/{personas.project.pk}"
    as_text = lead.post(f"{base}/comparisons/", data="prompt,a,b", content_type="text/csv")
    assert as_text.status_code == 415
    assert "text/csv" in as_text.json()["detail"]
    as_json = lead.post(f"{base}/imports/", data=json.dumps({"fmt": "jsonl"}), content_type="application/json")
    assert as_json.status_code == 415
    assert "application/json" in as_json.json()["detail"]


@pytest.mark.django_db
def test_it_answers_400_for_malformed_json(personas: Personas, client_for: ClientFor) -> None:
    base = f"/api/v1/projects/{personas.project.pk}"
    for user, path in ((personas.data_lead, f"{base}/comparisons/"), (personas.project_admin, f"{base}/members/")):
        answer = client_for(user).post(path, data='{"comparisons": [', content_type="application/json")
        assert answer.status_code == 400, path
        assert "JSON parse error" in answer.json()["detail"]


@pytest.mark.django_db
def test_it_answers_400_json_for_too_many_query_parameters_or_files(
    personas: Personas, client_for: ClientFor, caplog: pytest.LogCaptureFixture
) -> None:
    lead = client_for(personas.data_lead)
    base = f"/api/v1/projects/{personas.project.pk}"
    many = "&".join(f"p{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    fields = lead.get(f"{base}/items/?{many}")
    assert fields.status_code == 400
    assert f"at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}" in fields.json()["detail"]
    count = settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1
    files = {f"file{n}": SimpleUploadedFile(f"f{n}.jsonl", b"{}\n") for n in range(count)}
    too_many = lead.post(f"{base}/imports/", {"fmt": FMT, **files})
    assert too_many.status_code == 400
    assert f"at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES}" in too_many.json()["detail"]
    _no_errors_logged(caplog)


@pytest.mark.django_db
def test_it_answers_400_json_for_an_unknown_host(
    personas: Personas, settings: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    settings.ALLOWED_HOSTS = ["enclave.bank.example"]
    _, token = api_token_create(user=personas.data_lead, name="host", days=1)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    answer = client.get("/api/v1/health/", HTTP_HOST="attacker.example")
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("Unknown host")
    assert client.get("/api/v1/health/", HTTP_HOST="enclave.bank.example").status_code == 200
    _no_errors_logged(caplog)
    page = client.get("/login/", HTTP_HOST="attacker.example")
    assert page.status_code == 400
    assert "text/html" in page["Content-Type"], "pages keep their HTML page"


@pytest.mark.django_db
def test_it_answers_json_500_for_a_fault_of_ours_under_the_api(
    personas: Personas, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from annotation import selectors

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "import_batches", broken)
    client = Client(raise_request_exception=False)
    client.force_login(personas.data_lead)
    answer = client.get(f"/api/v1/projects/{personas.project.pk}/imports/")
    assert answer.status_code == 500
    assert answer["Content-Type"] == "application/json"
    assert "Internal error" in answer.json()["detail"]
    assert any(r.levelno == logging.ERROR for r in caplog.records), "our own fault is logged as an error"


# --- A real HTTP client against a live server ------------------------------------------------------------------


def _post(url: str, body: bytes, token: str, content_type: str = "application/json") -> tuple[int, str, dict[str, Any]]:
    """POST with urllib (it sends the whole body before it reads, and asks the server to close after)."""
    request = urllib.request.Request(  # noqa: S310 - a loopback test server
        url, data=body, method="POST", headers={"Authorization": f"Token {token}", "Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - a loopback test server
            return answer.status, answer.headers["Content-Type"], json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers["Content-Type"], json.loads(refused.read())


def _multipart(fields: dict[str, str], file_name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/x-ndjson\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _check_limits_over_http(base_url: str, project_id: int, token: str) -> None:
    url = f"{base_url}/api/v1/projects/{project_id}/comparisons/"
    for size in (3 * 1024 * 1024, 5 * 1024 * 1024 + 17):
        status, content_type, body = _post(url, _comparisons_body(size), token)
        assert (status, content_type) == (413, "application/json"), size
        assert body["limit_bytes"] == JSON_LIMIT
    status, _, body = _post(url, b'{"comparisons": [', token)
    assert status == 400
    assert "JSON parse error" in body["detail"]
    status, _, body = _post(url, b"a,b", token, content_type="text/csv")
    assert status == 415


def _check_upload_limit_over_http(base_url: str, project_id: int, token: str, limit: int) -> None:
    line = b'{"prompt": "How do I close my account?", "response": "Visit a branch."}\n'
    body, content_type = _multipart({"fmt": FMT}, "big.jsonl", line * (limit * 3 // len(line)))
    url = f"{base_url}/api/v1/projects/{project_id}/imports/"
    status, answered_type, refusal = _post(url, body, token, content_type)
    assert (status, answered_type) == (413, "application/json")
    assert refusal["limit_bytes"] == limit


@pytest.mark.django_db(transaction=True)
def test_it_lets_a_real_client_read_the_413_from_the_live_server(live_server: Any, settings: SettingsWrapper) -> None:
    personas = make_personas()
    _, token = api_token_create(user=personas.data_lead, name="live", days=1)
    _check_limits_over_http(live_server.url, personas.project.pk, token)
    settings.IMPORT_MAX_BYTES = 2 * 1024 * 1024
    _check_upload_limit_over_http(live_server.url, personas.project.pk, token, 2 * 1024 * 1024)
    assert not ImportBatch.objects.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gunicorn_url(transactional_db: None) -> Iterator[str]:
    """The production server (gunicorn, threaded workers as in docker-compose) on the test database."""
    port = _free_port()
    env = worker_env(IMPORT_MAX_MB="2", ALLOWED_HOSTS="127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "enclave.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "2", "--env", "DJANGO_SETTINGS_MODULE=enclave.settings.test"],
        cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "enclave.settings.test"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start: {proc.stderr.read() if proc.stderr else ''}") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate(timeout=10)
        assert " ERROR " not in stderr, stderr[-3000:]
        assert "Traceback" not in stderr, stderr[-3000:]


@pytest.mark.skipif(os.name != "posix", reason="gunicorn runs on POSIX only")
def test_it_lets_a_real_client_read_the_413_from_gunicorn(gunicorn_url: str) -> None:
    personas = make_personas()
    _, token = api_token_create(user=personas.data_lead, name="gunicorn", days=1)
    _check_limits_over_http(gunicorn_url, personas.project.pk, token)
    _check_upload_limit_over_http(gunicorn_url, personas.project.pk, token, 2 * 1024 * 1024)
    assert not ImportBatch.objects.exists()
