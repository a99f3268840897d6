"""A gpu worker killed with SIGKILL in the middle of a DPO job, with real processes: the gpu worker (Celery,
solo pool, its fork server and the training child) and a default worker, whose reaper notices the silence.
The job must end ``failed`` as "worker lost" within the heartbeat timeout, leave no adapter, no work files,
no training child, no row lock and no delivery held by the broker, and "Run again" must train it to the same
adapter bytes as a run nobody interrupted."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from core.storage import artifact_storage
from tests.conftest import make_personas
from tests.processes import gone_within
from tests.training.helpers import dpo_inputs, quick_config, wait_for
from tests.workers import start_worker, stop_worker
from training import services
from training.models import Adapter, JobLogLine, JobState, TrainingJob

pytestmark = pytest.mark.worker

# The workers of this test run with a short heartbeat timeout and reap every second, so a lost worker is
# noticed in seconds rather than the production 90 s.
HEARTBEAT_TIMEOUT = 10
REAP_EVERY = 1
ENDED: set[str] = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


@pytest.fixture
def workers(transactional_db: None, tmp_path: Path) -> Iterator["Workers"]:
    started = Workers(tmp_path)
    yield started
    started.stop_all()


class Workers:
    """The worker processes this test started, each with its own log file; all stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, queue: str, name: str) -> "subprocess.Popen[str]":
        log = (self.logs / f"{name}-{len(self.procs)}.log").open("w")
        proc = start_worker(
            queue,
            name,
            output=log,
            TRAINING_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT),
            TRAINING_REAP_INTERVAL=str(REAP_EVERY),
        )
        proc.log_path = log.name
        self.procs.append(proc)
        return proc

    def output(self) -> str:
        return "\n".join(Path(p.log_path).read_text()[-3000:] for p in self.procs)  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                stop_worker(proc, timeout=60)


def test_it_fails_a_dpo_job_whose_gpu_worker_was_killed_and_reruns_it_to_the_same_adapter(
    workers: Workers, tiny_model_dir: Path
) -> None:
    personas = make_personas()
    project, admin = personas.project, personas.project_admin
    prefs, model = dpo_inputs(personas, tiny_model_dir)
    config = quick_config("dpo", max_steps=60, eval_steps=0)
    workers.start("default", "pytest-default")
    gpu = workers.start("gpu", "pytest-gpu")

    held_before = _broker_deliveries_held()  # the database is new for this test, the broker is not

    # Mid-step: at least one train step logged, the child training, then the worker process itself is killed.
    job = services.training_job_start(actor=admin, project=project, kind="dpo", release=prefs, base_model=model,
                                      config=config, preset="cpu_check")  # fmt: skip
    job = wait_for(job, ENDED, until=lambda j: j.step >= 1 and j.child_pid)
    assert job.state == JobState.RUNNING, f"{job.failure_reason}\n{workers.output()}"
    assert JobLogLine.objects.filter(job=job, line__startswith="train step").exists()
    child = job.child_pid
    assert child is not None
    os.kill(gpu.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    gpu.wait(timeout=10)

    # Failed as "worker lost" within the heartbeat timeout (plus the reaper's period and a poll), with its last
    # log lines, by the reaper on the default worker: no gpu worker has come back yet.
    job = wait_for(job, ENDED, timeout=HEARTBEAT_TIMEOUT + 30)
    time_to_failed = time.monotonic() - killed_at
    print(f"\nSIGKILL to failed: {time_to_failed:.1f} s (heartbeat timeout {HEARTBEAT_TIMEOUT} s)")  # noqa: T201
    assert job.state == JobState.FAILED, job.failure_reason
    assert "worker lost" in job.failure_reason.lower(), job.failure_reason
    assert "Last log lines" in job.failure_reason
    assert "train step" in job.failure_reason
    assert time_to_failed <= HEARTBEAT_TIMEOUT + REAP_EVERY + 5, f"{time_to_failed:.1f} s\n{workers.output()}"

    # The orphaned child stopped training, and nothing of a half-written adapter is left anywhere.
    assert gone_within(child, 15), "the training child outlived its worker"
    assert not Adapter.objects.filter(job=job).exists()
    assert _stored_files(f"adapters/{project.pk}/{job.work_name}") == []
    work = Path(settings.TRAINING_WORK_DIR) / job.work_name
    assert not work.exists(), f"the job's work directory is left: {sorted(map(str, work.rglob('*')))}"

    # No lock on the job's row and no delivery of its task held by the broker (which would come back later).
    with transaction.atomic():
        assert TrainingJob.objects.select_for_update(nowait=True).filter(pk=job.pk).exists()
    assert set(_broker_deliveries_held()) - set(held_before) == set()

    # A new gpu worker; "Run again" trains the same inputs to the same adapter as an uninterrupted run.
    workers.start("gpu", "pytest-gpu")
    again = services.training_job_rerun(actor=admin, job=job)
    uninterrupted = services.training_job_start(actor=admin, project=project, kind="dpo", release=prefs,
                                                base_model=model, config=config, preset="cpu_check")  # fmt: skip
    for done in (again, uninterrupted):
        done = wait_for(done, ENDED, timeout=300)
        assert done.state == JobState.SUCCEEDED, f"{done.failure_reason}\n{workers.output()}"
    assert again.rerun_of == job
    assert again.config_hash == uninterrupted.config_hash == job.config_hash
    assert Adapter.objects.get(job=again).sha256 == Adapter.objects.get(job=uninterrupted).sha256
    assert not Adapter.objects.filter(job=job).exists()


def _stored_files(prefix: str) -> list[str]:
    storage = artifact_storage()
    try:
        directories, files = storage.listdir(prefix)
    except FileNotFoundError:
        return []
    return sorted(files) + [name for d in directories for name in _stored_files(f"{prefix}/{d}")]


def _broker_deliveries_held() -> dict[str, str]:
    """Training tasks that a worker took from Redis without acknowledging them (kombu's ``unacked`` hash, by
    delivery tag): Redis hands them out again once the visibility timeout has passed."""
    if not settings.REDIS_URL:
        return {}
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    held = {_text(tag): _text(message) for tag, message in client.hgetall("unacked").items()}
    return {tag: message for tag, message in held.items() if "training.training_job_run" in message}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
