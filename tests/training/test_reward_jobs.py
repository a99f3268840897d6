"""Reward-model jobs: the form's "Train" choice on a preference release, refusals before queueing (a release that
is not a preference release, a non-admin), and a reward job through a real gpu worker: RewardTrainer on the
tiny model, the reward model registered with its lineage, its page and API, and scores read back as the
trainer read them."""

import subprocess
from pathlib import Path

import pytest

from accounts.models import AuditEvent
from core.errors import DomainError
from tests.access_matrix import matrix_job_form
from tests.conftest import ClientFor, Personas, make_personas
from tests.training.helpers import dpo_inputs, quick_config, sft_release, wait_for
from training import selectors, services
from training.config import JobConfig
from training.models import JobMetric, JobState, RewardModel, TrainingJob


def test_it_trains_a_reward_model_when_train_says_so_and_reads_only_its_options(
    personas: Personas, client_for: ClientFor, tiny_model_dir: Path
) -> None:
    release, model = dpo_inputs(personas, tiny_model_dir)
    admin = client_for(personas.project_admin)
    page = admin.get(f"/projects/{personas.project.pk}/training/new/").content.decode()
    assert 'data-switch-refine="preference_kind:dpo"' in page
    assert 'id="field-preference_kind" data-when="dpo kto reward">' in page
    assert 'id="field-center_rewards_coefficient" data-when="reward" hidden>' in page

    form = {**matrix_job_form(personas), "release": release.pk, "base_model": model.pk}
    form |= {"preference_kind": "reward", "center_rewards_coefficient": "0.01", "beta": "steep", "packing": "on"}
    response = admin.post(f"/projects/{personas.project.pk}/training/new/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = TrainingJob.objects.get(project=personas.project)
    assert job.kind == "reward"
    assert job.config["center_rewards_coefficient"] == 0.01
    assert not {"beta", "loss_type", "packing"} & set(job.config), "DPO's and SFT's options are not read"
    detail = admin.get(f"/projects/{personas.project.pk}/training/{job.pk}/").content.decode()
    assert "Reward model (pairwise, on preference data)" in detail
    assert 'id="chart-pairs"' in detail

    # Without "Train", a preference release trains a DPO adapter as before.
    form.pop("preference_kind")
    form["beta"] = "0.1"
    response = admin.post(f"/projects/{personas.project.pk}/training/new/", form)
    assert response.status_code == 302
    assert TrainingJob.objects.filter(project=personas.project).order_by("-pk")[0].kind == "dpo"


def test_it_refuses_a_reward_job_on_a_release_that_is_not_a_preference_release(
    personas: Personas, client_for: ClientFor, tiny_model_dir: Path
) -> None:
    _, model = dpo_inputs(personas, tiny_model_dir)
    sft = sft_release(personas.project, personas.data_lead, personas.annotator, personas.reviewer, count=4)
    with pytest.raises(DomainError) as refused:
        services.training_job_start(
            actor=personas.project_admin, project=personas.project, kind="reward", release=sft, base_model=model,
            config=quick_config("reward"),
        )  # fmt: skip
    assert refused.value.field == "release"
    assert "A reward-model job needs a preference release" in refused.value.message

    url = f"/api/v1/projects/{personas.project.pk}/training/jobs/"
    body = {"kind": "reward", "release": sft.pk, "base_model": model.pk, "preset": "cpu_check"}
    response = client_for(personas.project_admin).post(url, body, content_type="application/json")
    assert response.status_code == 400
    assert "preference release" in response.content.decode()
    # A data lead may not start one (403: the project is theirs to see, not to train in); nothing is queued.
    response = client_for(personas.data_lead).post(url, body, content_type="application/json")
    assert response.status_code in (403, 404)
    # An option of another kind is not a reward option.
    with pytest.raises(DomainError) as unknown:
        JobConfig.from_dict("reward", {"center_rewards_coefficient": 2})
    assert unknown.value.field == "center_rewards_coefficient"
    assert not TrainingJob.objects.filter(project=personas.project).exists()


@pytest.mark.worker
def test_it_trains_a_reward_model_on_a_gpu_worker_and_registers_its_lineage(
    gpu_worker: subprocess.Popen[str], tiny_model_dir: Path, tmp_path: Path, client_for: ClientFor
) -> None:
    from training.inspection import tokenizer_hash
    from training.reward_scoring import load_reward_model, reward_scores
    from training.runner import stage_trained

    personas = make_personas()
    release, model = dpo_inputs(personas, tiny_model_dir)
    job = services.training_job_start(
        actor=personas.project_admin, project=personas.project, kind="reward", release=release, base_model=model,
        config=quick_config("reward"), preset="cpu_check",
    )  # fmt: skip
    job = wait_for(job, {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
    log = Path(gpu_worker.log_path).read_text()[-4000:]  # type: ignore[attr-defined]
    assert job.state == JobState.SUCCEEDED, f"{job.failure_reason}\n{log}"

    reward_model = RewardModel.objects.get(job=job)
    assert reward_model.release_hash == release.hash
    assert reward_model.base_model_hash == model.content_hash
    assert reward_model.config_hash == job.config_hash == quick_config("reward").hash
    assert reward_model.tokenizer_hash == tokenizer_hash(model.files) != ""
    assert reward_model.library_versions["trl"] == "1.16.0"
    assert reward_model.code_version not in ("", "unknown")
    assert reward_model.storage_prefix == f"reward-models/{personas.project.pk}/job-{job.pk}"
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {f["path"] for f in reward_model.files}
    assert job.environment["network"]["refused"] == []
    record = selectors.lineage(reward_model)
    assert record["format"] == "enclave-reward-model-lineage/1"
    assert record["reward_model"]["sha256"] == reward_model.sha256
    assert record["release"]["hash"] == release.hash
    assert record["tokenizer_hash"] == reward_model.tokenizer_hash

    # Held-out pair accuracy and margin before and after; live pair accuracy and margin per logged step.
    for when in ("before", "after"):
        values = job.evaluation[when]
        assert 0 <= values["pair_accuracy"] <= 1
        assert values["pairs"] == release.eval_rows
        assert "mean_margin" in values
    steps = JobMetric.objects.filter(job=job, phase="train")
    assert steps.exists()
    assert all({"loss", "accuracy", "margin"} <= set(m.values) for m in steps)
    actions = set(AuditEvent.objects.filter(project=personas.project).values_list("action", flat=True))
    assert "training.reward_model_register" in actions
    assert "training.adapter_register" not in actions

    # It loads as a one-output scorer from the artifact store and scores answers (finite, deterministic).
    local = stage_trained(reward_model, tmp_path / "reward-model")
    scorer, tokenizer, device = load_reward_model(str(tiny_model_dir), str(local))
    conversation = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "thank you kindly"}]
    first = reward_scores(scorer, tokenizer, device, [conversation, conversation])
    # The same answer twice in one batch: equal up to float32 rounding (BLAS may sum a batch's rows differently).
    assert first[0] == pytest.approx(first[1], rel=1e-5)

    # Its page and API for the project's admins and data leads; 404 for an annotator.
    pk = personas.project.pk
    page = client_for(personas.data_lead).get(f"/projects/{pk}/reward-models/{reward_model.pk}/")
    assert page.status_code == 200
    assert reward_model.sha256 in page.content.decode()
    assert reward_model.tokenizer_hash in page.content.decode()
    listing = client_for(personas.project_admin).get(f"/api/v1/projects/{pk}/reward-models/").json()
    assert [row["id"] for row in listing["results"]] == [reward_model.pk]
    job_row = client_for(personas.project_admin).get(f"/api/v1/projects/{pk}/training/jobs/{job.pk}/").json()
    assert job_row["reward_model"] == reward_model.pk
    assert job_row["adapter"] is None
    assert client_for(personas.annotator).get(f"/projects/{pk}/reward-models/{reward_model.pk}/").status_code == 404


def test_it_starts_a_kto_job_from_the_form_and_the_api_and_refuses_a_batch_of_one(
    personas: Personas, client_for: ClientFor, tiny_model_dir: Path
) -> None:
    release, model = dpo_inputs(personas, tiny_model_dir)
    admin = client_for(personas.project_admin)
    form = {**matrix_job_form(personas), "release": release.pk, "base_model": model.pk, "preference_kind": "kto"}
    form |= {"desirable_weight": "1.0", "undesirable_weight": "1.33", "loss_type": "nonsense"}
    response = admin.post(f"/projects/{personas.project.pk}/training/new/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = TrainingJob.objects.get(project=personas.project)
    assert job.kind == "kto"
    assert job.config["undesirable_weight"] == 1.33
    assert "beta" in job.config
    assert "loss_type" not in job.config, "DPO's loss types are not KTO's"

    url = f"/api/v1/projects/{personas.project.pk}/training/jobs/"
    body = {"kind": "kto", "release": release.pk, "base_model": model.pk, "preset": "cpu_check",
            "config": {"batch_size": 1}}  # fmt: skip
    refused = admin.post(url, body, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["field"] == "batch_size" or "batch_size" in refused.content.decode()
    body["config"] = {}
    assert admin.post(url, body, content_type="application/json").json()["kind"] == "kto"
