"""Runs in MLflow: a real SFT job on the tiny model through real gpu and default workers, logged to a real MLflow
tracking server (``tests/mlflow_server.py``) and read back through MLflow's own client; the server away first (the
job succeeds all the same and the failure is recorded with its reason), a retry that leaves one run, and a site
without ``MLFLOW_TRACKING_URI`` that sends nothing and never imports mlflow."""

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from core.errors import DomainError
from core.storage import artifact_storage
from tests.conftest import ClientFor, make_personas
from tests.mlflow_server import MlflowServer
from tests.processes import free_port
from tests.training.helpers import quick_config, ready_model, sft_release, wait_for
from tests.workers import ROOT, start_worker, stop_worker, worker_env
from training import selectors, services, tracking
from training.models import JobMetric, JobState, MlflowRun, MlflowState, TrainingJob

ENDED: set[str] = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


def _run_of(job: TrainingJob, until: Callable[[MlflowRun], bool], timeout: float = 90) -> MlflowRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = MlflowRun.objects.filter(job=job).first()
        if row is not None and until(row):
            return row
        time.sleep(0.3)
    raise AssertionError(f"MLflow run of {job}: {MlflowRun.objects.filter(job=job).values().first()}")


@pytest.mark.worker
def test_it_logs_a_job_with_its_lineage_once_the_server_answers_and_never_twice(
    transactional_db: None, tiny_model_dir: Path, tmp_path: Path, client_for: ClientFor, settings: object
) -> None:
    from mlflow import MlflowClient

    server = MlflowServer(tmp_path / "mlflow")
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server.start()  # it starts while the job trains; its port answers only once it is waited for below
    logs = tmp_path / "workers.log"
    workers = []
    try:
        with logs.open("w") as out:
            workers.append(start_worker("gpu", "pytest-gpu", output=out, MLFLOW_TRACKING_URI=away))
            default = start_worker(
                "default", "pytest", output=out, MLFLOW_TRACKING_URI=away, MLFLOW_REQUEST_RETRIES="0"
            )
            workers.append(default)
        personas = make_personas()
        admin = personas.project_admin
        release = sft_release(personas.project, personas.data_lead, personas.annotator, personas.reviewer)
        model = ready_model(personas.staff, tiny_model_dir)
        job = services.training_job_start(
            actor=admin, project=personas.project, kind="sft", release=release, base_model=model,
            config=quick_config("sft"), preset="cpu_check",
        )  # fmt: skip

        # The server is away: the job succeeds all the same, and the failure is kept with its reason.
        job = wait_for(job, ENDED)
        assert job.state == JobState.SUCCEEDED, f"{job.failure_reason}\n{logs.read_text()[-4000:]}"
        row = _run_of(job, lambda row: row.state != MlflowState.QUEUED)
        assert row.state == MlflowState.FAILED, logs.read_text()[-4000:]
        assert row.reason.startswith(f"MLflow at {away} did not take the run: ")
        assert "Connection refused" in row.reason
        failed = AuditEvent.objects.get(action="training.mlflow_failed", object_id=str(job.pk))
        assert failed.payload["tracking_uri"] == away
        assert AuditEvent.objects.get(action="training.adapter_register").payload["mlflow"] == "queued"
        admin_client = client_for(admin)
        shown = admin_client.get(reverse("api_training_job", args=[personas.project.pk, job.pk])).json()
        assert shown["state"] == "succeeded"
        assert shown["mlflow"]["state"] == "failed"
        assert shown["mlflow"]["reason"] == row.reason
        page = admin_client.get(reverse("training_job", args=[personas.project.pk, job.pk])).content.decode()
        assert f"Not logged to MLflow at {away}" in page
        assert "Send to MLflow again" in page

        # The server answers now: a default worker that reaches it, and the admin sends the run again.
        server.wait()
        stop_worker(workers.pop(), timeout=30)
        with logs.open("a") as out:
            workers.append(start_worker("default", "pytest", output=out, MLFLOW_TRACKING_URI=server.uri))
        settings.MLFLOW_TRACKING_URI = server.uri  # type: ignore[attr-defined]
        response = admin_client.post(reverse("api_training_job_mlflow_resend", args=[personas.project.pk, job.pk]))
        assert response.status_code == 202, response.content
        assert response.json()["mlflow"]["state"] == "queued"
        row = _run_of(job, lambda row: row.state != MlflowState.QUEUED)
        assert row.state == MlflowState.LOGGED, f"{row.reason}\n{server.log()}"
        assert row.attempts == 2  # the one that failed, and this one
        _check_run(MlflowClient(tracking_uri=server.uri), job, row, tmp_path / "downloaded")

        shown = admin_client.get(reverse("api_training_job", args=[personas.project.pk, job.pk])).json()["mlflow"]
        assert shown["run_url"] == f"{server.uri}/#/experiments/{row.experiment_id}/runs/{row.run_id}"
        page = admin_client.get(reverse("training_job", args=[personas.project.pk, job.pk])).content.decode()
        assert f'Logged to MLflow: <a href="{shown["run_url"]}"' in page
        again = admin_client.post(reverse("api_training_job_mlflow_resend", args=[personas.project.pk, job.pk]))
        assert again.status_code == 409
        assert "logged in MLflow already" in again.json()["detail"]

        # A task delivered again after MLflow took it all (its commit lost): it adopts the run, sends nothing.
        MlflowRun.objects.filter(pk=row.pk).update(state=MlflowState.QUEUED)
        retried = tracking.training_job_mlflow_log(job_id=job.pk)
        assert retried is not None
        assert retried.state == MlflowState.LOGGED, retried.reason
        assert (retried.run_id, retried.model_version) == (row.run_id, row.model_version)
        logged = AuditEvent.objects.filter(action="training.mlflow_logged").order_by("id")
        assert [event.payload["adopted"] for event in logged] == [False, True]
        client = MlflowClient(tracking_uri=server.uri)
        assert len(client.search_runs([row.experiment_id])) == 1
        assert len(client.search_model_versions(f"name = '{row.model_name}'")) == 1
    finally:
        for worker in workers:
            stop_worker(worker, timeout=60)
        server.stop()


def _check_run(client: object, job: TrainingJob, row: MlflowRun, folder: Path) -> None:
    """What MLflow holds of the job, read back through its client, against the job's own records."""
    from mlflow import MlflowClient

    assert isinstance(client, MlflowClient)
    adapter = job.adapter
    lineage = selectors.lineage(adapter)
    experiment = client.get_experiment(row.experiment_id)
    assert experiment.name == row.experiment_name == f"enclave/{job.project.name}"
    runs = client.search_runs([row.experiment_id])
    assert [run.info.run_id for run in runs] == [row.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"job-{job.pk} sft"

    # Params: the whole config, flattened.
    assert set(job.config) <= set(run.data.params)
    assert run.data.params["learning_rate"] == json.dumps(job.config["learning_rate"])
    assert run.data.params["max_steps"] == "6"

    # Tags: the hashes are the lineage's.
    tags = run.data.tags
    assert tags["enclave.job_id"] == str(job.pk)
    assert tags["enclave.release_hash"] == lineage["release"]["hash"] == job.release.hash
    assert tags["enclave.base_model_hash"] == lineage["base_model"]["hash"] == job.base_model.content_hash
    assert tags["enclave.config_hash"] == lineage["config_hash"] == job.config_hash
    assert tags["enclave.adapter_sha256"] == adapter.sha256
    assert tags["enclave.code_version"] == adapter.code_version
    assert tags["enclave.logged"] == "complete"

    # Metrics: each charted figure with the steps it was logged at.
    history = client.get_metric_history(row.run_id, "loss")
    logged = JobMetric.objects.filter(job=job, phase="train").order_by("step")
    assert [(m.step, m.value) for m in history] == [(m.step, m.values["loss"]) for m in logged]
    assert [m.step for m in client.get_metric_history(row.run_id, "learning_rate")] == list(range(1, 7))
    eval_steps = [m.step for m in client.get_metric_history(row.run_id, "eval_loss")]
    evaluations = JobMetric.objects.filter(job=job, phase="eval")  # the last one twice: MLflow keeps it once
    assert eval_steps == sorted(set(evaluations.values_list("step", flat=True)))
    assert run.data.metrics["held_out_after/eval_loss"] == job.evaluation["after"]["eval_loss"]

    # Artifacts: the lineage record, the release's datasheet and the adapter's files, byte for byte.
    names = {entry.path for entry in client.list_artifacts(row.run_id)}
    assert {"lineage.json", "datasheet.md", "datasheet.json", "adapter"} <= names
    downloaded = Path(client.download_artifacts(row.run_id, "", str(folder)))
    assert json.loads((downloaded / "lineage.json").read_text()) == json.loads(json.dumps(lineage, default=str))
    storage = artifact_storage()
    for stored in job.release.files.filter(path__in=("datasheet.md", "datasheet.json")):
        with storage.open(stored.storage_name, "rb") as source:
            assert (downloaded / stored.path).read_bytes() == source.read()
    for entry in adapter.files:
        with storage.open(f"{adapter.storage_prefix}/{entry['path']}", "rb") as source:
            assert (downloaded / "adapter" / entry["path"]).read_bytes() == source.read()

    # The adapter as a model version of the project's and base model's registered model, with its sha256.
    version = client.get_model_version(row.model_name, row.model_version)
    assert row.model_name == f"enclave.{job.project.name}.{job.base_model.name}"
    assert version.run_id == row.run_id
    assert version.tags["enclave.adapter_sha256"] == adapter.sha256
    assert adapter.sha256 in (version.description or "")
    assert (version.source or "").endswith("/adapter")


@pytest.mark.django_db
def test_it_queues_nothing_when_no_tracking_server_is_set(settings: object) -> None:
    assert settings.MLFLOW_TRACKING_URI is None  # type: ignore[attr-defined]
    ended = TrainingJob(pk=1, state=JobState.SUCCEEDED, started_at=timezone.now(), finished_at=timezone.now())
    assert tracking.mlflow_log_queue(ended) is False
    assert not MlflowRun.objects.exists()
    with pytest.raises(DomainError, match="No MLflow tracking server is set"):
        services.training_job_mlflow_resend(actor=None, job=ended)


def test_it_never_imports_mlflow_without_a_tracking_server() -> None:
    """A worker's and the web's modules of a site without MLFLOW_TRACKING_URI, a job ended on it: no mlflow."""
    script = (
        "import django, sys; django.setup()\n"
        "import training.tasks, training.views, training.api, enclave.urls\n"
        "from training import tracking\n"
        "assert tracking.tracking_enabled() is False\n"
        "assert not [name for name in sys.modules if name.split('.')[0] == 'mlflow'], 'mlflow imported'\n"
    )
    env = {key: value for key, value in worker_env().items() if not key.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
