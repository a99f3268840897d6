"""Scoring runs through a real gpu worker (Celery, solo pool, the training fork server) with a real reward model
on the tiny model, no mocks: one score per candidate, the same (within 1e-4) as the reward model gives in this
process, progress and forward-pass time recorded, the network refused, the work directory removed."""

import math
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import AuditEvent
from evaluation import services
from evaluation.models import Candidate, RewardScore
from tests.conftest import make_personas
from tests.evaluation.scoring_helpers import stored_reward_model, wait_for_scoring
from tests.evaluation.test_scoring_runs import answered_run
from tests.training.helpers import preference_release, ready_model
from training.models import JobState, RewardModel

pytestmark = pytest.mark.worker

ENDED: set[str] = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


def _output(proc: subprocess.Popen[str]) -> str:
    return Path(proc.log_path).read_text()[-6000:]  # type: ignore[attr-defined]


def test_it_scores_every_candidate_as_the_reward_model_does_in_process(
    gpu_worker: subprocess.Popen[str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    personas = make_personas()
    model = ready_model(personas.staff, tiny_model_dir)
    release = preference_release(personas.project, personas.data_lead, personas.reviewer, count=4)
    reward_model = stored_reward_model(
        project=personas.project, actor=personas.project_admin, base_model=model, release=release,
        directory=tmp_path / "reward", seed=3,
    )  # fmt: skip
    run = answered_run(personas, model, answers=3)
    # Answers of different lengths, so the batches are padded.
    for n, candidate in enumerate(Candidate.objects.filter(run=run).order_by("pk")):
        Candidate.objects.filter(pk=candidate.pk).update(text="thank you kindly " * n + f"answer {n}")

    scoring = services.scoring_run_start(
        actor=personas.project_admin, project=personas.project, reward_model=reward_model, generation_run=run,
        batch_size=4,
    )  # fmt: skip
    scoring = wait_for_scoring(scoring, ENDED)
    assert scoring.state == JobState.SUCCEEDED, f"{scoring.failure_reason}\n{_output(gpu_worker)}"
    assert (scoring.done, scoring.total) == (6, 6)
    result = scoring.environment["result"]
    assert 0 < scoring.seconds <= result["loop_seconds"], "the forward passes alone are timed"
    assert abs(scoring.seconds - result["forward_seconds"]) < 1e-3
    assert scoring.environment["network"]["refused"] == []
    assert scoring.environment["network"]["self_check"].startswith("refused 192.0.2.1")

    candidates = list(Candidate.objects.filter(run=run).select_related("prompt").order_by("prompt__index", "sample"))
    stored = dict(RewardScore.objects.filter(run=scoring, reward_model=reward_model).values_list("candidate", "score"))
    assert set(stored) == {c.pk for c in candidates}

    from training.reward_scoring import load_reward_model, reward_scores

    scorer, tokenizer, device = load_reward_model(model.path, str(tmp_path / "reward"))
    conversations = [[*c.prompt.messages, {"role": "assistant", "content": c.text}] for c in candidates]
    expected = reward_scores(scorer, tokenizer, device, conversations, batch_size=2)
    for candidate, score in zip(candidates, expected, strict=True):
        assert math.isfinite(stored[candidate.pk])
        assert abs(stored[candidate.pk] - score) < 1e-4, (candidate.text, stored[candidate.pk], score)
    assert len({round(score, 6) for score in stored.values()}) > 1, "the answers are told apart"

    actions = set(AuditEvent.objects.filter(project=personas.project).values_list("action", flat=True))
    assert {
        "evaluation.scoring_run_start", "evaluation.scoring_run_running", "evaluation.scoring_run_succeeded"
    } <= actions  # fmt: skip

    # A long run: its live fragment shows progress while it scores; a cancel stops the child and keeps what was
    # stored.
    client = Client()
    client.force_login(personas.project_admin)
    long_run = answered_run(personas, model, answers=16, prompts=64)
    Candidate.objects.filter(run=long_run).update(text="thank you kindly, we will review it today " * 100)
    long = services.scoring_run_start(
        actor=personas.project_admin, project=personas.project, reward_model=reward_model, generation_run=long_run,
        batch_size=1,
    )  # fmt: skip
    long = wait_for_scoring(long, ENDED, until=lambda run: run.done >= 2)
    live = client.get(
        f"/projects/{personas.project.pk}/scoring/{long.pk}/?fragment=status", headers={"HX-Request": "true"}
    )
    assert "of 1024 answers" in live.content.decode()
    services.scoring_run_cancel(actor=personas.project_admin, run=long)
    long = wait_for_scoring(long, ENDED, timeout=60)
    assert long.state == JobState.CANCELLED, long.failure_reason
    assert long.failure_reason.startswith("Cancelled by project_admin after ")
    assert 2 <= RewardScore.objects.filter(run=long).count() < 1024

    # A reward model whose stored file no longer matches its sha256 in the lineage is not used: the run fails
    # and says why.
    files = [dict(entry) for entry in reward_model.files]
    files[0]["sha256"] = "0" * 64
    RewardModel.objects.filter(pk=reward_model.pk).update(files=files)
    broken = services.scoring_run_start(
        actor=personas.project_admin, project=personas.project, reward_model=reward_model, generation_run=long_run
    )
    broken = wait_for_scoring(broken, ENDED)
    assert broken.state == JobState.FAILED
    assert "does not match its sha256 in the lineage" in broken.failure_reason, broken.failure_reason
    assert not any(Path(settings.TRAINING_WORK_DIR).glob("scoring-*")), "work directories are removed"
