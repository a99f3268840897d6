"""Builders for training tests: releases made by the release pipeline, a registered tiny base model, and a
poll that waits for a job to reach a state."""

import random
import time
from pathlib import Path
from typing import Any

from accounts.models import Project, User
from releases.models import Release
from tests.conftest import Personas
from tests.releases.helpers import build, comparisons, judge, sft_project
from training import services
from training.config import JobConfig
from training.models import BaseModel, BaseModelState, TrainingJob
from training.tiny_model import WORDS as _WORDS

POLITE = ["please, thank you, we will help you kindly", "thank you, we can review it today, kindly"]
RUDE = ["no. cannot.", "no, rude, we reject it"]


def distinct_prompts(count: int, seed: int) -> list[str]:
    """Questions that share few words, so the release's near-duplicate check keeps them apart."""
    rng = random.Random(seed)
    words = [w for w in _WORDS if len(w) > 3]
    return [" ".join(rng.sample(words, 7)).capitalize() + "?" for _ in range(count)]


def sft_release(project: Project, lead: User, annotator: User, reviewer: User, count: int = 10) -> Release:
    sft_project(project, lead, annotator, reviewer, distinct_prompts(count, seed=1))
    return build(project, lead, name="sft", kind="sft", eval_fraction=0.3)


def preference_release(project: Project, lead: User, judge_user: User, count: int = 10) -> Release:
    prompts = distinct_prompts(count, seed=2)
    for item in comparisons(project, lead, prompts):
        judge(item, judge_user, {"winner": 0, "strength": 2})
    return build(project, lead, name="prefs", eval_fraction=0.3)


def ready_model(actor: User, directory: Path, name: str = "tiny") -> BaseModel:
    """Register and validate in this process (the worker test registers through the gpu worker instead)."""
    model = BaseModel.objects.create(name=name, path=str(directory), registered_by=actor)
    validated = services.base_model_validate(model_id=model.pk)
    assert validated is not None
    assert validated.state == BaseModelState.READY, validated.failure_reason
    return validated


def dpo_inputs(personas: Personas, directory: Path) -> tuple[Release, BaseModel]:
    """What a DPO job of project A trains on: a preference release the reviewer judged, and the tiny model."""
    prefs = preference_release(personas.project, personas.data_lead, personas.reviewer)
    return prefs, ready_model(personas.staff, directory)


def quick_config(kind: str, **values: Any) -> JobConfig:
    defaults = {"max_steps": 6, "eval_steps": 3, "max_length": 256, "batch_size": 2, "learning_rate": 5e-3}
    return services.job_config_from_input(kind=kind, preset="cpu_check", values={**defaults, **values})


def wait_for(job: TrainingJob, states: set[str], timeout: float = 180, until: Any = None) -> TrainingJob:
    """Poll the job until it is in one of ``states`` (or ``until(job)`` holds); returns it fresh."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = TrainingJob.objects.get(pk=job.pk)
        if job.state in states or (until is not None and until(job)):
            return job
        time.sleep(0.3)
    raise AssertionError(f"{job} is still {job.state} (step {job.step}) after {timeout} s: {job.failure_reason}")
