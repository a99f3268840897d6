"""The MLflow side of a job's run: what ``training.tracking`` gathered from the database, sent to the tracking server
with MLflow's client (``mlflow-skinny``), which is imported here only, on the first run logged, so a site without
``MLFLOW_TRACKING_URI`` never imports it.

One job, one run: the run carries the tag ``enclave.job_id``, and the tag ``enclave.logged`` is set last, once the
params, metrics, artifacts and model version are in. Logging again adopts a run that has it, and deletes the runs
of an attempt that stopped half-way before starting anew, so a retried task never leaves a second run behind.

Nothing but the tracking server is ever called: MLflow's telemetry is switched off before the import, and the
client's timeout and retries come from the settings."""

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings

# MLflow's limits (mlflow.utils.validation): longer values are refused by the server, so they are cut here, and
# the whole config is in the run's lineage.json anyway.
PARAM_VALUE_LIMIT = 6000
TAG_VALUE_LIMIT = 8000
KEY_LIMIT = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
JOB_TAG = "enclave.job_id"
COMPLETE_TAG = "enclave.logged"

T = TypeVar("T")


@dataclass
class RunRecord:
    """Everything one job's run holds, read from the database beforehand (no query happens while sending)."""

    job_id: int
    experiment_name: str
    run_name: str
    status: str  # MLflow's run status: FINISHED, FAILED or KILLED
    start_ms: int
    end_ms: int
    params: dict[str, str]
    metrics: list[tuple[str, float, int, int]]  # key, value, timestamp in ms, step
    tags: dict[str, str]
    experiment_tags: dict[str, str]
    artifacts: Path | None = None  # a directory uploaded as the run's artifacts
    model_name: str = ""  # registered model; empty when the job left no adapter
    model_artifact_path: str = ""  # the folder of ``artifacts`` that is the model version's source
    model_tags: dict[str, str] = field(default_factory=dict)
    model_description: str = ""


@dataclass
class Logged:
    experiment_id: str
    run_id: str
    model_version: str
    adopted: bool  # an earlier attempt had logged it all: nothing was sent again


def flat_params(config: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The config as MLflow params: nested keys joined with dots, values as JSON (strings as they are), each cut to
    MLflow's limit; returns the params and the keys that were cut."""
    params: dict[str, str] = {}
    cut: list[str] = []

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                add(f"{prefix}.{key}" if prefix else str(key), inner)
            return
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if len(text) > PARAM_VALUE_LIMIT:
            text = text[: PARAM_VALUE_LIMIT - 1] + "…"
            cut.append(prefix)
        params[prefix[:KEY_LIMIT]] = text

    add("", config)
    return params, cut


def public_uri(uri: str) -> str:
    """The tracking URI without the credentials it may hold, for the page, the audit log and links."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    return f"{public_uri(uri)}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}"


def model_version_url(uri: str, name: str, version: str) -> str:
    return f"{public_uri(uri)}/#/models/{quote(name)}/versions/{quote(version)}"


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _client_environment() -> None:
    """Before MLflow is imported and on every call: no telemetry, and the settings' timeout and retries."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.MLFLOW_REQUEST_TIMEOUT)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.MLFLOW_REQUEST_RETRIES)


def log_run(record: RunRecord, *, tracking_uri: str) -> Logged:
    """Log ``record`` as one run (adopting a complete one of an earlier attempt) and register its model version.
    Raises whatever the client raises (``MlflowException``, a requests error) when the server refuses or is away."""
    _client_environment()
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag, ViewType
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name(record.experiment_name)
    if experiment is not None:
        experiment_id = str(experiment.experiment_id)
    else:
        try:
            experiment_id = client.create_experiment(record.experiment_name, tags=record.experiment_tags)
        except MlflowException:  # made meanwhile by another worker's job of the same project
            made = client.get_experiment_by_name(record.experiment_name)
            if made is None:
                raise
            experiment_id = str(made.experiment_id)

    earlier = client.search_runs(
        [experiment_id], filter_string=f"tags.`{JOB_TAG}` = '{record.job_id}'", run_view_type=ViewType.ACTIVE_ONLY
    )
    for run in earlier:
        if run.data.tags.get(COMPLETE_TAG) == "complete":
            versions = client.search_model_versions(f"run_id = '{run.info.run_id}'") if record.model_name else []
            return Logged(experiment_id, run.info.run_id, str(versions[0].version) if versions else "", adopted=True)
    for run in earlier:  # an attempt that stopped half-way: its run would show partial figures
        client.delete_run(run.info.run_id)

    run = client.create_run(
        experiment_id, start_time=record.start_ms, tags={JOB_TAG: str(record.job_id)}, run_name=record.run_name
    )
    run_id = run.info.run_id
    params = [Param(key, value) for key, value in record.params.items()]
    tags = [RunTag(key[:KEY_LIMIT], value[:TAG_VALUE_LIMIT]) for key, value in record.tags.items()]
    for some_params in _chunks(params, PARAMS_PER_BATCH):
        client.log_batch(run_id, params=some_params)
    for some_tags in _chunks(tags, PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=some_tags)
    metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in record.metrics]
    for some_metrics in _chunks(metrics, METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=some_metrics)
    if record.artifacts is not None:
        client.log_artifacts(run_id, str(record.artifacts))

    version = ""
    if record.model_name:
        try:
            client.create_registered_model(
                record.model_name, description="LoRA adapters trained by Enclave on this project and base model."
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        registered = client.create_model_version(
            record.model_name,
            source=f"{run.info.artifact_uri}/{record.model_artifact_path}",
            run_id=run_id,
            tags=record.model_tags,
            description=record.model_description,
        )
        version = str(registered.version)
    client.set_tag(run_id, COMPLETE_TAG, "complete")
    client.set_terminated(run_id, status=record.status, end_time=record.end_ms)
    return Logged(experiment_id, run_id, version, adopted=False)
