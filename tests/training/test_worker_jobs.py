"""Training through a real gpu worker (Celery, solo pool, its fork server) on the configured broker: SFT and
DPO jobs from releases built by the release pipeline, real TRL/PEFT training on the tiny model, adapters
that load and generate, full lineage, the network record, cancel, a SIGKILLed child, and reproducibility."""

import os
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import AuditEvent
from core.storage import artifact_storage
from tests.conftest import make_personas
from tests.processes import alive, gone_within
from tests.training.helpers import dpo_inputs, preference_release, quick_config, sft_release, wait_for
from training import selectors, services
from training.models import Adapter, BaseModel, JobMetric, JobState, TrainingJob, TrainingWorker

pytestmark = pytest.mark.worker


def _worker_output(proc: subprocess.Popen[str]) -> str:
    return Path(proc.log_path).read_text()[-6000:]  # type: ignore[attr-defined]


def _download(adapter: Adapter, target: Path) -> Path:
    storage = artifact_storage()
    target.mkdir(parents=True, exist_ok=True)
    for entry in adapter.files:
        with storage.open(f"{adapter.storage_prefix}/{entry['path']}", "rb") as source:
            (target / entry["path"]).write_bytes(source.read())
    return target


def _register_through_worker(actor: object, directory: Path, proc: subprocess.Popen[str]) -> BaseModel:
    model = services.base_model_register(actor=actor, name="tiny", path=str(directory))  # type: ignore[arg-type]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        model.refresh_from_db()
        if model.state != "validating":
            break
        time.sleep(0.3)
    assert model.state == "ready", f"{model.state}: {model.failure_reason}\n{_worker_output(proc)}"
    return model


def test_it_trains_sft_and_dpo_adapters_that_load_and_carry_their_lineage(
    gpu_worker: subprocess.Popen[str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    personas = make_personas()
    project, lead = personas.project, personas.data_lead
    sft = sft_release(project, lead, personas.annotator, personas.reviewer)
    prefs = preference_release(project, lead, personas.reviewer)
    model = _register_through_worker(personas.staff, tiny_model_dir, gpu_worker)
    assert model.architecture == "LlamaForCausalLM"
    assert "q_proj" in model.linear_modules

    jobs = {}
    for kind, release in (("sft", sft), ("dpo", prefs)):
        jobs[kind] = services.training_job_start(
            actor=personas.project_admin, project=project, kind=kind, release=release, base_model=model,
            config=quick_config(kind), preset="cpu_check",
        )  # fmt: skip
    for kind, job in jobs.items():
        job = wait_for(job, {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
        assert job.state == JobState.SUCCEEDED, f"{kind}: {job.failure_reason}\n{_worker_output(gpu_worker)}"
        adapter = Adapter.objects.get(job=job)
        release = job.release

        # Lineage: every field filled, and bound to the very release, base model and config.
        assert len(release.hash) == len(model.content_hash) == 64
        assert adapter.release_hash == release.hash
        assert adapter.base_model_hash == model.content_hash
        assert adapter.config_hash == job.config_hash == quick_config(kind).hash
        assert adapter.seed == 42
        assert set(adapter.library_versions) >= {"torch", "transformers", "peft", "trl", "datasets"}
        assert adapter.library_versions["trl"] == "1.16.0"
        assert adapter.code_version not in ("", "unknown")
        assert adapter.hardware["device"] == "cpu"
        assert adapter.hardware["cpu_count"] >= 1
        assert adapter.started_by == personas.project_admin
        assert adapter.started_at <= adapter.finished_at
        assert len(adapter.sha256) == 64
        assert adapter.size_bytes > 0
        lineage = selectors.lineage(adapter)
        assert lineage["release"]["hash"] == release.hash
        assert lineage["base_model"]["hash"] == model.content_hash

        # No socket left the machine: the child's audit hook saw no connection at all, and refused its probe.
        network = job.environment["network"]
        assert network["refused"] == []
        assert all(host in {"127.0.0.1", "::1", "localhost"} for host in network["connects"])
        assert network["self_check"].startswith("refused 192.0.2.1")

        # Live metrics and the held-out evaluation before and after.
        steps = JobMetric.objects.filter(job=job, phase="train").order_by("step")
        assert [m.step for m in steps] == list(range(1, 7))
        assert all("loss" in m.values and "learning_rate" in m.values for m in steps)
        assert JobMetric.objects.filter(job=job, phase="eval").exists()
        assert job.step == job.total_steps == 6
        if kind == "dpo":
            assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"} <= set(
                steps[0].values
            )
            assert job.evaluation["before"]["preference_accuracy"] == 0.5
            assert "preference_accuracy" in job.evaluation["after"]
        else:
            assert job.evaluation["before"]["eval_loss"] > 0
            assert job.evaluation["after"]["eval_loss"] < job.evaluation["before"]["eval_loss"]

        # The adapter loads on the base model with PEFT and generates.
        local = _download(adapter, tmp_path / f"adapter-{kind}")
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
        loaded = PeftModel.from_pretrained(base, local, local_files_only=True)
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hello"}], add_generation_prompt=True, tokenize=False
        )
        prompt = tokenizer(str(text), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = loaded.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert out.shape[1] > prompt["input_ids"].shape[1]
        assert isinstance(tokenizer.decode(out[0]), str)

    actions = set(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert {"training.job_start", "training.job_running", "training.adapter_register"} <= actions
    assert TrainingWorker.objects.filter(hostname__startswith="pytest-gpu@").exists()
    assert not any((Path(settings.TRAINING_WORK_DIR)).glob("job-*")), "work directories are removed"


def test_it_cancels_survives_a_killed_child_and_reproduces_an_adapter(
    gpu_worker: subprocess.Popen[str], tiny_model_dir: Path
) -> None:
    personas = make_personas()
    project, admin = personas.project, personas.project_admin
    prefs, model = dpo_inputs(personas, tiny_model_dir)
    endless = quick_config("dpo", max_steps=100_000, eval_steps=0)

    # Cancel mid-run: the child ends, the job says who cancelled and at which step.
    job = services.training_job_start(actor=admin, project=project, kind="dpo", release=prefs, base_model=model,
                                      config=endless)  # fmt: skip
    job = wait_for(job, {JobState.FAILED}, until=lambda j: j.step >= 2)
    assert job.state == JobState.RUNNING, job.failure_reason
    child = job.child_pid
    services.training_job_cancel(actor=admin, job=job)
    job = wait_for(job, {JobState.CANCELLED, JobState.FAILED}, timeout=60)
    assert job.state == JobState.CANCELLED, f"{job.failure_reason}\n{_worker_output(gpu_worker)}"
    assert f"Cancelled by {admin.username} at step" in job.failure_reason
    assert child is not None
    assert not alive(child)
    assert not Adapter.objects.filter(job=job).exists()

    # A child killed with SIGKILL (as the out-of-memory killer does): failed, with the reason and last lines.
    job = services.training_job_start(actor=admin, project=project, kind="dpo", release=prefs, base_model=model,
                                      config=endless)  # fmt: skip
    job = wait_for(job, {JobState.FAILED}, until=lambda j: j.step >= 2 and j.child_pid)
    assert job.child_pid is not None
    os.kill(job.child_pid, signal.SIGKILL)
    job = wait_for(job, {JobState.FAILED, JobState.CANCELLED, JobState.SUCCEEDED}, timeout=60)
    assert job.state == JobState.FAILED
    assert "SIGKILL" in job.failure_reason
    assert "Last log lines" in job.failure_reason
    assert "train step" in job.failure_reason

    # A job failed behind its supervisor's back (by the reaper, as when the worker lost the database for a
    # while) is stopped rather than trained on for nobody, and keeps the reaper's reason.
    job = services.training_job_start(actor=admin, project=project, kind="dpo", release=prefs, base_model=model,
                                      config=endless)  # fmt: skip
    job = wait_for(job, {JobState.FAILED}, until=lambda j: j.step >= 2 and j.child_pid)
    later = timezone.now() + timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT + 5)
    assert services.training_jobs_reap(now=later) == [job.pk]
    assert gone_within(job.child_pid or 0, 30)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.failure_reason.startswith("Worker lost")

    # The worker still serves: the next job succeeds, and running it again gives the same adapter, byte for byte.
    first = services.training_job_start(actor=admin, project=project, kind="dpo", release=prefs, base_model=model,
                                        config=quick_config("dpo"))  # fmt: skip
    first = wait_for(first, {JobState.SUCCEEDED, JobState.FAILED})
    assert first.state == JobState.SUCCEEDED, f"{first.failure_reason}\n{_worker_output(gpu_worker)}"
    again = services.training_job_rerun(actor=admin, job=first)
    again = wait_for(again, {JobState.SUCCEEDED, JobState.FAILED})
    assert again.state == JobState.SUCCEEDED, again.failure_reason
    assert again.rerun_of == first
    assert again.config_hash == first.config_hash
    assert Adapter.objects.get(job=again).sha256 == Adapter.objects.get(job=first).sha256
    assert TrainingJob.objects.filter(project=project).count() == 5
