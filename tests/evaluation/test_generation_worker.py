"""Generation runs through a real gpu worker (Celery, solo pool, the training fork server) on real tiny models,
no mocks of transformers: candidates with their full provenance, runs that repeat, and a model that leaks an
e-mail address and an IBAN it memorised, whose answers are stored scrubbed and never reach anyone raw."""

import io
import json
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import AuditEvent
from evaluation import services
from evaluation.models import Candidate, GenerationPrompt, GenerationRun
from tests.conftest import make_personas
from tests.evaluation.helpers import EMAIL, IBAN, LEAK_PROMPT, make_leaky_model, stored_adapter, wait_for_run
from tests.training.helpers import preference_release, ready_model
from training.models import JobState

pytestmark = pytest.mark.worker

ENDED: set[str] = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


def _output(proc: subprocess.Popen[str]) -> str:
    return Path(proc.log_path).read_text()[-6000:]  # type: ignore[attr-defined]


def test_it_generates_candidates_with_provenance_and_scrubs_what_the_model_leaks(
    gpu_worker: subprocess.Popen[str], tmp_path: Path
) -> None:
    personas = make_personas()
    project, admin = personas.project, personas.project_admin
    model = ready_model(personas.staff, make_leaky_model(tmp_path / "leaky"), name="leaky")
    release = preference_release(project, personas.data_lead, personas.reviewer)
    adapter = stored_adapter(personas, model, release, tmp_path / "adapter")

    # 1. The base model alone, greedy, on an uploaded file: the uploaded prompt's own PII is scrubbed on the way
    # in; the answers, which hold the memorised e-mail and IBAN, are scrubbed before they are stored.
    upload = io.BytesIO(
        (
            json.dumps({"messages": [{"role": "user", "content": LEAK_PROMPT}], "id": "leak"}) + "\n"
            + json.dumps({"messages": [{"role": "user", "content": "I am bob@example.org; what now?"}]}) + "\n"
        ).encode()
    )  # fmt: skip
    leak = services.generation_run_start(
        actor=admin, project=project, base_model=model, adapter=None, source="upload", upload=upload,
        fmt="chat_jsonl", source_name="leak.jsonl", decoding={"max_new_tokens": 60, "batch_size": 2},
    )  # fmt: skip
    # 2. With the adapter, sampling two candidates per prompt of the release's held-out split; 3. the same again.
    decoding = {"candidates": 2, "temperature": 0.9, "top_p": 0.95, "max_new_tokens": 12, "seed": 7, "batch_size": 2}
    sampled = [
        services.generation_run_start(
            actor=admin,
            project=project,
            base_model=model,
            adapter=adapter,
            source="release_eval",
            release=release,
            decoding=decoding,
        )
        for _ in range(2)
    ]
    leak = wait_for_run(leak, ENDED)
    assert leak.state == JobState.SUCCEEDED, f"{leak.failure_reason}\n{_output(gpu_worker)}"

    # The leak: the model really said it, and what is stored says [EMAIL_1] and [IBAN_1] instead.
    assert GenerationPrompt.objects.get(run=leak, index=1).messages[0]["content"] == "I am [EMAIL_1]; what now?"
    answers = list(Candidate.objects.filter(run=leak).order_by("prompt__index"))
    answer = answers[0]
    assert answer.text == "Send it to [EMAIL_1] with IBAN [IBAN_1] please.", answer.text
    assert answer.scrub_counts == {"EMAIL": 1, "IBAN": 1}
    totals = {kind: sum(a.scrub_counts.get(kind, 0) for a in answers) for kind in ("EMAIL", "IBAN")}
    assert leak.scrub_counts == totals
    assert totals["EMAIL"] >= 1
    assert totals["IBAN"] >= 1
    client = Client()
    client.force_login(admin)
    api = client.get(f"/api/v1/projects/{project.pk}/generation-runs/{leak.pk}/candidates/")
    page = client.get(f"/projects/{project.pk}/generation/{leak.pk}/")
    run_api = client.get(f"/api/v1/projects/{project.pk}/generation-runs/{leak.pk}/")
    assert api.status_code == page.status_code == run_api.status_code == 200
    assert api.json()["results"][0]["text"] == answer.text
    assert run_api.json()["scrub_counts"] == totals
    assert f"{leak.scrubbed_values} values scrubbed" in page.content.decode()
    stored = [
        *Candidate.objects.values_list("text", flat=True),
        *(json.dumps(m) for m in GenerationPrompt.objects.values_list("messages", flat=True)),
        *(json.dumps(e) for e in GenerationRun.objects.values_list("environment", flat=True)),
        *(json.dumps(p) for p in AuditEvent.objects.values_list("payload", flat=True)),
        api.content.decode(), page.content.decode(), run_api.content.decode(),
    ]  # fmt: skip
    for raw in (EMAIL, IBAN, "bob@example.org"):
        assert not any(raw in text for text in stored), f"{raw} was stored or shown"

    # Provenance: every candidate of the adapter's runs carries the model hash, adapter sha256, decoding, seed,
    # code version, token counts and time; both runs give the same answers (seeded per batch).
    runs = [wait_for_run(run, ENDED) for run in sampled]
    for run in runs:
        assert run.state == JobState.SUCCEEDED, f"{run.failure_reason}\n{_output(gpu_worker)}"
        assert run.base_model_hash == model.content_hash
        assert len(run.base_model_hash) == 64
        assert run.adapter_sha256 == adapter.sha256
        assert len(run.adapter_sha256) == 64
        assert run.code_version not in ("", "unknown")
        assert run.environment["network"]["refused"] == []
        assert run.environment["network"]["self_check"].startswith("refused 192.0.2.1")
        assert run.prompts_done == run.prompt_count == release.items.filter(split="eval").count() > 0
        assert run.completion_tokens > 0
        assert run.generation_seconds > 0
        assert run.tokens_per_second
        candidates = list(Candidate.objects.filter(run=run).select_related("prompt"))
        assert len(candidates) == 2 * run.prompt_count
        assert {c.sample for c in candidates} == {0, 1}
        assert {c.seed for c in candidates} <= {7 + batch for batch in range(run.prompt_count)}
        assert all(c.prompt_tokens > 0 and 0 < c.completion_tokens <= 12 and c.seconds > 0 for c in candidates)
        assert all(c.finish_reason in ("stop", "length") for c in candidates)
        assert sum(c.completion_tokens for c in candidates) == run.completion_tokens
    first, again = ([c.text for c in Candidate.objects.filter(run=run).order_by("prompt__index", "sample")]
                    for run in runs)  # fmt: skip
    assert first == again
    listed = client.get(f"/api/v1/projects/{project.pk}/generation-runs/{runs[0].pk}/candidates/").json()
    provenance = listed["results"][0]["provenance"]
    assert provenance["base_model_hash"] == model.content_hash
    assert provenance["adapter_sha256"] == adapter.sha256
    assert provenance["decoding"] == {**decoding, "temperature": 0.9, "top_p": 0.95}
    assert provenance["seed"] == 7
    assert provenance["code_version"] == runs[0].code_version
    assert {"prompt_tokens", "completion_tokens", "seconds"} <= set(provenance)

    # A long run: its live fragment shows progress while it generates; a cancel stops the child and keeps what
    # was stored.
    long = services.generation_run_create(
        actor=admin, project=project, base_model=model, source="upload", source_name="long.jsonl",
        prompts=[{"messages": [{"role": "user", "content": f"Question {n}?"}]} for n in range(300)],
        decoding={"max_new_tokens": 200, "batch_size": 1},
    )  # fmt: skip
    long = wait_for_run(long, ENDED, until=lambda run: run.prompts_done >= 2)
    live = client.get(f"/projects/{project.pk}/generation/{long.pk}/?fragment=status", headers={"HX-Request": "true"})
    assert "of 300 prompts" in live.content.decode()
    assert "tokens/s" in live.content.decode()
    services.generation_run_cancel(actor=admin, run=long)
    long = wait_for_run(long, ENDED, timeout=60)
    assert long.state == JobState.CANCELLED, long.failure_reason
    assert long.failure_reason.startswith("Cancelled by project_admin after ")
    assert 2 <= Candidate.objects.filter(run=long).count() < 300

    actions = set(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert {
        "evaluation.generation_start",
        "evaluation.generation_running",
        "evaluation.generation_succeeded",
    } <= actions
    assert not any(Path(settings.TRAINING_WORK_DIR).glob("generation-*")), "work directories are removed"
