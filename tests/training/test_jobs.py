"""Jobs without a worker: config validation and hashing, everything refused before queueing, the heartbeat
reaper, redelivered and orphaned jobs, cancel, the base-model registry, and the pages and API around them."""

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from accounts.models import AuditEvent
from core.errors import DomainError
from tests.conftest import ClientFor, Personas
from tests.training.helpers import dpo_inputs, quick_config, ready_model, sft_release
from training import runner, services
from training.config import JobConfig, preset_values
from training.inspection import ModelDirectoryError, inspect_model_directory
from training.models import BaseModel, JobLogLine, JobState, TrainingJob, TrainingWorker


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"lora_r": 0}, "lora_r"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"max_length": 8}, "max_length"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"loss_type": ["sigmoid", "bogus"]}, "loss_type"),
        ({"loss_type": []}, "loss_type"),
        ({"target_modules": "q_proj; drop table"}, "target_modules"),
        ({"target_modules": ["all-linear", "q_proj"]}, "target_modules"),
        ({"lr_scheduler": "sometimes"}, "lr_scheduler"),
        ({"beta": 0}, "beta"),
        ({"use_dora": True, "use_qlora": True}, "use_dora"),
        ({"dropout_everything": True}, "dropout_everything"),
    ],
)
def test_it_refuses_a_bad_config_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(DomainError) as refused:
        JobConfig.from_dict("dpo", values)
    assert refused.value.field == field
    assert refused.value.message


def test_it_stores_the_config_canonically_so_equal_configs_hash_equally() -> None:
    a = JobConfig.from_dict("dpo", {"loss_type": "sigmoid, sft", "target_modules": ["v_proj", "q_proj"], "seed": 7})
    b = JobConfig.from_dict("dpo", {"seed": "7", "target_modules": "q_proj, v_proj", "loss_type": ["sigmoid", "sft"]})
    assert a.canonical() == b.canonical()
    assert a.hash == b.hash
    assert a.canonical()["loss_type"] == ["sft", "sigmoid"]  # a list, as TRL takes it; sorted, for they add up
    same = JobConfig.from_dict(
        "dpo", {"loss_type": "sft, sigmoid", "target_modules": "v_proj, q_proj, q_proj", "seed": 7}
    )
    assert same.hash == a.hash, "order and repeats of modules and loss types do not change the config"
    assert a.canonical()["target_modules"] == ["q_proj", "v_proj"]
    assert "packing" not in a.canonical()
    sft = JobConfig.from_dict("sft", {"beta": 0.5})  # DPO-only options do not enter an SFT config
    assert "beta" not in sft.canonical()
    assert "loss_type" not in sft.canonical()
    assert JobConfig.from_dict("dpo", {"seed": 8}).hash != a.hash
    for key in ("cpu_check", "standard", "careful"):
        for kind in ("sft", "dpo"):
            assert JobConfig.from_dict(kind, preset_values(key, kind)).kind == kind
    assert preset_values("standard", "dpo")["learning_rate"] < preset_values("standard", "sft")["learning_rate"]


def test_it_refuses_what_cannot_run_before_queueing(personas: Personas, tiny_model_dir: Path) -> None:
    project, admin = personas.project, personas.project_admin
    prefs, model = dpo_inputs(personas, tiny_model_dir)

    def start(**overrides: Any) -> TrainingJob:
        arguments: dict[str, Any] = {
            "actor": admin, "project": project, "kind": "dpo", "release": prefs, "base_model": model,
            "config": quick_config("dpo"),
        }  # fmt: skip
        return services.training_job_start(**{**arguments, **overrides})

    with pytest.raises(DomainError, match="needs an SFT release") as refused:
        start(kind="sft", config=quick_config("sft"))
    assert refused.value.field == "release"
    with pytest.raises(DomainError, match="has no module “w_proj”"):
        start(config=quick_config("dpo", target_modules="q_proj, w_proj"))
    with pytest.raises(
        DomainError, match=r"QLoRA \(4-bit\) needs a gpu worker with a CUDA GPU and bitsandbytes"
    ) as refused:
        start(config=quick_config("dpo", use_qlora=True))
    assert refused.value.field == "use_qlora"
    TrainingWorker.objects.create(hostname="gpu@cpu-only", devices=[], bitsandbytes=True)
    with pytest.raises(DomainError, match="no worker with a GPU is online"):
        start(config=quick_config("dpo", use_qlora=True))
    TrainingWorker.objects.create(hostname="gpu@a100", devices=[{"name": "A100", "memory_bytes": 8}], bitsandbytes=True)
    assert start(config=quick_config("dpo", use_qlora=True)).config["use_qlora"] is True
    BaseModel.objects.filter(pk=model.pk).update(state="invalid")
    model.refresh_from_db()
    with pytest.raises(DomainError, match="not ready"):
        start(base_model=model)
    assert TrainingJob.objects.count() == 1
    assert AuditEvent.objects.filter(action="training.job_start").count() == 1


def _running(job: TrainingJob, beat_seconds_ago: float, worker: str = "gpu@host") -> TrainingJob:
    TrainingJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, worker=worker, heartbeat_at=timezone.now() - timedelta(seconds=beat_seconds_ago)
    )
    JobLogLine.objects.bulk_create([JobLogLine(job=job, seq=n, line=f"train step {n}/9: loss 0.5") for n in range(3)])
    return TrainingJob.objects.get(pk=job.pk)


def test_it_fails_jobs_whose_worker_went_silent_redelivered_or_restarted(
    personas: Personas, tiny_model_dir: Path, client_for: ClientFor
) -> None:
    project, admin = personas.project, personas.project_admin
    prefs, model = dpo_inputs(personas, tiny_model_dir)
    jobs = [
        services.training_job_start(
            actor=admin, project=project, kind="dpo", release=prefs, base_model=model, config=quick_config("dpo")
        )
        for _ in range(5)
    ]
    silent = _running(jobs[0], beat_seconds_ago=600)
    fresh = _running(jobs[1], beat_seconds_ago=1)
    with override_settings(TRAINING_HEARTBEAT_TIMEOUT=90):
        client_for(admin).get(f"/projects/{project.pk}/training/")  # the job list reaps
    silent.refresh_from_db()
    fresh.refresh_from_db()
    assert silent.state == JobState.FAILED
    assert silent.failure_reason.startswith("Worker lost: the gpu worker gpu@host stopped supervising this job")
    # 600 s, or a second or two more when the machine is busy between the fixture and the page's reaper
    assert re.search(r"no heartbeat for 60\d s \(the limit is 90 s\)", silent.failure_reason), silent.failure_reason
    assert "train step 2/9" in silent.failure_reason
    assert fresh.state == JobState.RUNNING

    # A task delivered twice while its supervisor still beats is left alone; delivered again after its
    # worker died (heartbeat stale), the job is failed, not trained twice.
    assert services.training_job_begin(job_id=fresh.pk, worker="gpu@other", environment={}) is None
    fresh.refresh_from_db()
    assert fresh.state == JobState.RUNNING
    TrainingJob.objects.filter(pk=fresh.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=300))
    assert services.training_job_begin(job_id=fresh.pk, worker="gpu@other", environment={}) is None
    fresh.refresh_from_db()
    assert fresh.state == JobState.FAILED
    assert fresh.failure_reason.startswith("Worker lost")
    assert "delivered again" in fresh.failure_reason

    # A restarted worker fails what it was running.
    orphan = _running(jobs[2], beat_seconds_ago=1, worker="gpu@restarted")
    assert services.training_jobs_fail_orphans(worker="gpu@restarted") == [orphan.pk]
    orphan.refresh_from_db()
    assert orphan.state == JobState.FAILED
    assert orphan.failure_reason.startswith("Worker lost")
    assert "restarted while this job ran" in orphan.failure_reason

    # Cancelling a queued job ends it at once; cancelling an ended one says so.
    queued = services.training_job_cancel(actor=admin, job=jobs[3])
    assert queued.state == JobState.CANCELLED
    assert services.training_job_begin(job_id=queued.pk, worker="gpu@host", environment={}) is None
    with pytest.raises(DomainError, match="already ended"):
        services.training_job_cancel(actor=admin, job=queued)
    actions = list(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert actions.count("training.job_fail") == 3
    assert actions.count("training.job_cancel") == 1

    # A gpu worker that starts removes the work directories ended jobs left (a child killed along with its
    # worker), and keeps those of jobs still running (on another worker sharing the directory).
    running = _running(jobs[4], beat_seconds_ago=1, worker="gpu@other")
    work = Path(settings.TRAINING_WORK_DIR)
    for job in (silent, orphan, running):
        (work / job.work_name / "adapter").mkdir(parents=True)
        (work / job.work_name / "adapter" / "adapter_model.safetensors").write_bytes(b"half")
    removed = runner.remove_work_of_ended_jobs()
    assert {silent.work_name, orphan.work_name} <= set(removed)
    assert running.work_name not in removed
    assert not (work / silent.work_name).exists()
    assert not (work / orphan.work_name).exists()
    assert (work / running.work_name / "adapter" / "adapter_model.safetensors").exists()
    shutil.rmtree(work / running.work_name)


def test_it_inspects_and_hashes_a_model_directory(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    facts = inspect_model_directory(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    assert facts.parameter_count == model.num_parameters()  # tied embeddings are stored, and counted, once
    assert facts.architecture == "LlamaForCausalLM"
    assert facts.dtype == "F32"
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= set(facts.linear_modules)
    assert {f["path"] for f in facts.files} >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert inspect_model_directory(tiny_model_dir).content_hash == facts.content_hash

    changed = tmp_path / "changed"
    shutil.copytree(tiny_model_dir, changed)
    config = json.loads((changed / "tokenizer_config.json").read_text())
    config["model_max_length"] = 77
    (changed / "tokenizer_config.json").write_text(json.dumps(config))
    assert inspect_model_directory(changed).content_hash != facts.content_hash

    no_template = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, no_template)
    config.pop("chat_template", None)
    (no_template / "tokenizer_config.json").write_text(json.dumps(config))
    (no_template / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ModelDirectoryError, match="no chat template"):
        inspect_model_directory(no_template)

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(ModelDirectoryError, match="Weights must be safetensors"):
        inspect_model_directory(pickled)
    with pytest.raises(ModelDirectoryError, match="not a directory"):
        inspect_model_directory(tmp_path / "missing")


def test_it_registers_only_absolute_paths_under_the_model_roots(personas: Personas, tmp_path: Path) -> None:
    with pytest.raises(DomainError, match="absolute path"):
        services.base_model_register(actor=personas.staff, name="rel", path="models/x")
    with override_settings(TRAINING_MODEL_ROOTS=[tmp_path / "models"]):
        with pytest.raises(DomainError, match="Models live under"):
            services.base_model_register(actor=personas.staff, name="elsewhere", path="/etc")
        model = services.base_model_register(actor=personas.staff, name="ok", path=str(tmp_path / "models" / "a"))
    assert model.state == "validating"
    checked = services.base_model_validate(model_id=model.pk)
    assert checked is not None
    assert checked.state == "invalid"
    assert "is not a directory" in checked.failure_reason
    assert AuditEvent.objects.filter(action="training.base_model_validate", object_id=str(model.pk)).exists()


def test_it_shows_refusals_progress_and_lineage_on_the_pages(
    personas: Personas, tiny_model_dir: Path, client_for: ClientFor
) -> None:
    from tests.access_matrix import matrix_adapter, matrix_job_form

    project = personas.project
    admin = client_for(personas.project_admin)
    ready_model(personas.staff, tiny_model_dir, name="matrix-model-real")
    form = matrix_job_form(personas)
    refused = admin.post(f"/projects/{project.pk}/training/new/", {**form, "loss_type": "sigmoid, nonsense"})
    assert refused.status_code == 400
    assert "Unknown DPO loss type “nonsense”" in refused.content.decode()
    assert not TrainingJob.objects.filter(project=project).exists()

    adapter_pk = matrix_adapter(personas)
    job = TrainingJob.objects.get(project=project)
    page = admin.get(f"/projects/{project.pk}/training/{job.pk}/").content.decode()
    assert "Succeeded" in page
    assert job.config_hash in page
    assert "Run again" in page
    assert 'title="config field “lora_r”">LoRA rank</th>' in page, "config rows carry the form's labels"
    lineage = admin.get(f"/projects/{project.pk}/adapters/{adapter_pk}/lineage.json").json()
    assert lineage["format"] == "enclave-adapter-lineage/1"
    assert lineage["release"]["hash"] == job.release.hash
    assert lineage["base_model"]["hash"] == job.base_model.content_hash
    assert lineage["config_hash"] == job.config_hash
    assert lineage["release"]["datasheet_url"].endswith("/datasheet/?as=md")
    listing = client_for(personas.data_lead).get(f"/projects/{project.pk}/training/").content.decode()
    assert "New training job" not in listing  # data leads watch; project admins start
    assert f"/projects/{project.pk}/adapters/{adapter_pk}/" in listing


def test_it_starts_a_job_from_a_preset_through_the_api_and_refuses_with_a_body_that_says_why(
    personas: Personas, tiny_model_dir: Path, client_for: ClientFor
) -> None:
    project = personas.project
    sft = sft_release(project, personas.data_lead, personas.annotator, personas.reviewer)
    model = ready_model(personas.staff, tiny_model_dir)
    api = client_for(personas.project_admin)
    url = f"/api/v1/projects/{project.pk}/training/jobs/"
    body = {"kind": "sft", "release": sft.pk, "base_model": model.pk, "preset": "cpu_check", "config": {"seed": 3}}
    created = api.post(url, json.dumps(body), content_type="application/json")
    assert created.status_code == 202, created.content
    job = created.json()
    assert job["state"] == "queued"
    assert job["config"]["seed"] == 3
    assert job["config"]["lora_r"] == 8  # from the preset
    assert job["release_hash"] == sft.hash
    bad = api.post(url, json.dumps({**body, "config": {"max_length": 4}}), content_type="application/json")
    assert bad.status_code == 400
    assert "max_length" in json.dumps(bad.json())
