"""Builders for scoring tests: a real (untrained) reward model of a base model in the artifact store, registered
as a finished reward job's would be (the job row is written directly, so no training task is queued), and a
poll for a scoring run's state."""

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.files import File
from django.utils import timezone

from accounts.models import Project, User
from evaluation.models import ScoringRun
from releases.models import Release
from training.models import BaseModel, JobState, RewardModel, TrainingJob

_numbers = itertools.count(1)


def stored_reward_model(
    *, project: Project, actor: User, base_model: BaseModel, release: Release, directory: Path, seed: int = 0
) -> RewardModel:
    """The base model as a one-output sequence classifier with a LoRA adapter (``SEQ_CLS``, the score head saved
    with it), its files under ``reward-models/<project>/test-<n>`` in the artifact store, and its rows: a
    succeeded reward job and the ``RewardModel`` with files, sha256 and the base model's tokenizer hash."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from core.hashing import file_sha256
    from core.storage import artifact_storage
    from training.inspection import tokenizer_hash

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model.path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(base_model.path, num_labels=1, local_files_only=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules="all-linear")
    get_peft_model(model, lora).save_pretrained(str(directory), safe_serialization=True)
    now = timezone.now()
    job = TrainingJob.objects.create(
        project=project, kind="reward", release=release, base_model=base_model, config={}, config_hash="0" * 64,
        state=JobState.SUCCEEDED, created_by=actor, started_at=now, finished_at=now,
    )  # fmt: skip
    storage, prefix = artifact_storage(), f"reward-models/{project.pk}/test-{next(_numbers)}-{job.pk}"
    files: list[dict[str, Any]] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = str(path.relative_to(directory))
        with path.open("rb") as stream:
            storage.save(f"{prefix}/{relative}", File(stream, name=relative))
        files.append({"path": relative, "size_bytes": path.stat().st_size, "sha256": file_sha256(path)})
    weights = next(f for f in files if f["path"].endswith("adapter_model.safetensors"))
    return RewardModel.objects.create(
        job=job, project=project, release=release, base_model=base_model, started_by=actor,
        tokenizer_hash=tokenizer_hash(base_model.files), name=f"reward-{job.pk}", storage_prefix=prefix,
        sha256=weights["sha256"], size_bytes=sum(f["size_bytes"] for f in files), files=files,
        release_hash=release.hash, base_model_hash=base_model.content_hash, config={}, config_hash="0" * 64,
        seed=seed, code_version="test", started_at=now, finished_at=now,
    )  # fmt: skip


def wait_for_scoring(
    run: ScoringRun, states: set[str], timeout: float = 180, until: Callable[[ScoringRun], bool] | None = None
) -> ScoringRun:
    """Poll the run until it is in one of ``states`` (or ``until(run)`` holds); returns it fresh."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = ScoringRun.objects.get(pk=run.pk)
        if run.state in states or (until is not None and until(run)):
            return run
        time.sleep(0.3)
    raise AssertionError(f"{run} is still {run.state} after {timeout} s: {run.failure_reason}")


def reward_model_row(*, project: Project, actor: User, base_model: BaseModel, release: Release) -> RewardModel:
    """A registered reward model's rows alone (a succeeded reward job and the model): for tests whose scores are
    written by hand, so nothing loads it."""
    now = timezone.now()
    job = TrainingJob.objects.create(
        project=project, kind="reward", release=release, base_model=base_model, config={}, config_hash="0" * 64,
        state=JobState.SUCCEEDED, created_by=actor, started_at=now, finished_at=now,
    )  # fmt: skip
    return RewardModel.objects.create(
        job=job, project=project, release=release, base_model=base_model, started_by=actor, tokenizer_hash="",
        name=f"reward-{job.pk}", storage_prefix=f"reward-models/{project.pk}/row-{job.pk}", sha256="e" * 64,
        size_bytes=1, release_hash=release.hash, base_model_hash=base_model.content_hash, config={},
        config_hash="0" * 64, seed=0, code_version="test", started_at=now, finished_at=now,
    )  # fmt: skip
