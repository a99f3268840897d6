"""A gpu node that shares no disk with the web: its worker runs with a data directory of its own, reads release
files from and writes adapters to an S3 protocol server (moto, standing in for the bank's object store), and
the web serves the adapter from there. And one job trained by two CPU processes through ``accelerate launch``."""

import hashlib
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from accounts.models import User
from core.storage import artifact_storage
from releases.models import Release
from tests.conftest import ClientFor, Personas, make_personas
from tests.s3 import s3_client, s3_env, s3_server
from tests.training.helpers import quick_config, ready_model, sft_release, wait_for
from tests.workers import start_worker, stop_worker
from training import services
from training.models import Adapter, BaseModel, JobState

pytestmark = pytest.mark.worker

LOG_TAIL = 6000


@pytest.fixture
def object_store(transactional_db: None) -> Iterator[dict[str, Any]]:
    """The web's artifact store is the S3 server for the test's length, as ARTIFACT_S3_BUCKET would make it."""
    with s3_server() as options:
        storages = {**settings.STORAGES, "artifacts": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}}
        with override_settings(STORAGES=storages):
            yield options


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _output(log: Path) -> str:
    return log.read_text()[-LOG_TAIL:] if log.exists() else ""


def _register_through(actor: User, directory: Path, log: Path) -> BaseModel:
    """Register the base model and let the gpu worker check it: the model directory is the node's own."""
    model = services.base_model_register(actor=actor, name="tiny", path=str(directory))
    deadline = time.monotonic() + 180
    while model.state == "validating" and time.monotonic() < deadline:
        time.sleep(0.3)
        model.refresh_from_db()
    assert model.state == "ready", f"{model.state}: {model.failure_reason}\n{_output(log)}"
    return model


@contextmanager
def _gpu_worker(name: str, log: Path, **env: str) -> Iterator["subprocess.Popen[str]"]:
    """A gpu worker writing to ``log`` for the length of the block; stopped (and waited for) at its end."""
    with log.open("w") as output:
        proc = start_worker("gpu", name, output=output, **env)
        try:
            yield proc
        finally:
            stop_worker(proc, timeout=60)


def _train_sft(personas: Personas, release: Release, model: BaseModel, log: Path) -> Adapter:
    """Project A's admin trains a quick SFT job on the running gpu worker, which must succeed."""
    job = services.training_job_start(
        actor=personas.project_admin, project=personas.project, kind="sft", release=release, base_model=model,
        config=quick_config("sft"), preset="cpu_check",
    )  # fmt: skip
    job = wait_for(job, {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}, timeout=300)
    printed = "\n".join(reversed(list(job.log_lines.order_by("-seq").values_list("line", flat=True)[:60])))
    assert job.state == JobState.SUCCEEDED, f"{job.failure_reason}\nThe job printed:\n{printed}\n{_output(log)}"
    return Adapter.objects.get(job=job)


def _loads_and_generates(model_dir: Path, adapter_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    loaded = PeftModel.from_pretrained(base, adapter_dir, local_files_only=True)
    prompt = tokenizer("hello", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = loaded.generate(**prompt, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def test_it_trains_on_a_gpu_node_that_shares_no_disk_with_the_web(
    object_store: dict[str, Any], tiny_model_dir: Path, tmp_path: Path
) -> None:
    if not (settings.DATABASE_IS_POSTGRES and settings.REDIS_URL):
        pytest.skip("a gpu node apart needs PostgreSQL and Redis (CI always has them)")
    personas = make_personas()
    project = personas.project
    release = sft_release(project, personas.data_lead, personas.annotator, personas.reviewer)
    assert release.state == "built", release.failure_reason
    bucket = s3_client(object_store)
    stored = {entry["Key"] for entry in bucket.list_objects_v2(Bucket=object_store["bucket_name"])["Contents"]}
    assert {f.storage_name for f in release.files.all()} <= stored  # the release lives in the object store only
    web_dir, node_dir, web_files = Path(settings.DATA_DIR), tmp_path / "gpu-node-data", Path(settings.MEDIA_ROOT)
    assert not any((web_files / f.storage_name).exists() for f in release.files.all())
    before = _files(web_dir)

    log = tmp_path / "gpu-node.log"
    node_env = {"ENCLAVE_DATA_DIR": str(node_dir), "GPU_NODE_APART": "true", **s3_env(object_store)}
    with _gpu_worker("pytest-gpu-node", log, **node_env) as proc:
        model = _register_through(personas.staff, tiny_model_dir, log)
        adapter = _train_sft(personas, release, model, log)
    assert proc.returncode == 0, _output(log)

    # The adapter's files are in the object store under the adapter's prefix, and the web serves them from there.
    stored = {entry["Key"] for entry in bucket.list_objects_v2(Bucket=object_store["bucket_name"])["Contents"]}
    assert {f"{adapter.storage_prefix}/{entry['path']}" for entry in adapter.files} <= stored
    assert "adapter_model.safetensors" in {entry["path"] for entry in adapter.files}
    lead = personas.data_lead
    client = ClientFor()(lead)
    base = f"/api/v1/projects/{project.pk}/adapters/{adapter.pk}/files"
    listed = client.get(f"{base}/").json()["results"]
    assert [entry["path"] for entry in listed] == [entry["path"] for entry in adapter.files]
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    for entry in listed:
        response = client.get(entry["download"])
        assert response.status_code == 200
        content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
        (downloaded / entry["path"]).write_bytes(content)
    _loads_and_generates(tiny_model_dir, downloaded)

    # The node worked in its own directory and wrote nothing in the web's.
    assert (node_dir / "training").is_dir()
    assert not any((node_dir / "training").glob("job-*")), "the job's scratch directory is removed"
    assert _files(web_dir) == before
    assert not (web_files / adapter.storage_prefix).exists()


def test_it_trains_one_job_in_two_cpu_processes_through_accelerate(
    transactional_db: None, tiny_model_dir: Path, tmp_path: Path
) -> None:
    personas = make_personas()
    project = personas.project
    release = sft_release(project, personas.data_lead, personas.annotator, personas.reviewer)
    model = ready_model(personas.staff, tiny_model_dir)
    log = tmp_path / "gpu-worker.log"
    with _gpu_worker("pytest-gpu-two", log, TRAINING_PROCESSES="2"):
        adapter = _train_sft(personas, release, model, log)

    lines = list(adapter.job.log_lines.values_list("line", flat=True))
    assert "Training in 2 processes (MULTI_CPU, gloo backend)." in lines, "\n".join(lines[-20:])
    assert sum(line.startswith("Loading base model") for line in lines) == 2  # one per rank
    assert adapter.metrics["train"]["processes"] == 2
    assert adapter.metrics["train"]["steps"] == 6
    local = tmp_path / "adapter"
    local.mkdir()
    for entry in adapter.files:
        with artifact_storage().open(f"{adapter.storage_prefix}/{entry['path']}", "rb") as source:
            (local / entry["path"]).write_bytes(source.read())
    _loads_and_generates(tiny_model_dir, local)
