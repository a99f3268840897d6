"""Scoring runs without a worker: what a run scores (a generation run's candidates, or every candidate of the
project's comparisons), what is refused (another project's reward model or run, a run that has not succeeded, a
reward model that reads another tokenizer, nothing to score), cancelling, and the run's life as its worker
reports it (scores stored once per reward model and answer, the end checked against the count, the reaper)."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Project
from annotation.models import Item
from core.errors import DomainError
from evaluation import services
from evaluation.models import Candidate, GenerationRun, RewardScore, ScoringRun
from evaluation.scoring_runs import answers_of
from releases.models import Release
from tests.conftest import Personas
from tests.evaluation.scoring_helpers import stored_reward_model
from tests.training.helpers import preference_release, ready_model
from training.models import BaseModel, JobState, RewardModel
from training.tiny_model import make_tiny_model


@pytest.fixture
def release(personas: Personas) -> Release:
    return preference_release(personas.project, personas.data_lead, personas.reviewer, count=4)


@pytest.fixture
def model(personas: Personas, tiny_model_dir: Path) -> BaseModel:
    return ready_model(personas.staff, tiny_model_dir)


@pytest.fixture
def reward_model(personas: Personas, model: BaseModel, release: Release, tmp_path: Path) -> RewardModel:
    return stored_reward_model(
        project=personas.project, actor=personas.project_admin, base_model=model, release=release,
        directory=tmp_path / "reward",
    )  # fmt: skip


def answered_run(
    personas: Personas, model: BaseModel, *, answers: int = 2, prompts: int = 2, project: Project | None = None
) -> GenerationRun:
    """A succeeded generation run of ``model`` with ``prompts`` prompts and ``answers`` candidates each."""
    run = services.generation_run_create(
        actor=personas.project_admin, project=project or personas.project, base_model=model, source="upload",
        prompts=[{"messages": [{"role": "user", "content": f"Question {n}?"}]} for n in range(prompts)],
        decoding={"candidates": max(answers, 1), "temperature": 1.0}, source_name="q.jsonl",
    )  # fmt: skip
    for prompt in run.prompts.all():
        for sample in range(answers):
            Candidate.objects.create(
                run=run, prompt=prompt, sample=sample, text=f"Answer {sample} to {prompt.index}.", seed=sample,
                prompt_tokens=4, completion_tokens=3, seconds=0.01, finish_reason="stop",
            )  # fmt: skip
    GenerationRun.objects.filter(pk=run.pk).update(state=JobState.SUCCEEDED)
    return GenerationRun.objects.get(pk=run.pk)


def _start(personas: Personas, reward_model: RewardModel, run: GenerationRun | None = None) -> ScoringRun:
    return services.scoring_run_start(
        actor=personas.project_admin, project=personas.project, reward_model=reward_model, generation_run=run
    )


def _no_run_written() -> None:
    assert not ScoringRun.objects.exists()
    assert not AuditEvent.objects.filter(action="evaluation.scoring_run_start").exists()


def test_it_queues_a_run_over_every_candidate_of_a_generation_run(
    personas: Personas, model: BaseModel, reward_model: RewardModel
) -> None:
    run = answered_run(personas, model, answers=3)
    scoring = _start(personas, reward_model, run)
    assert (scoring.state, scoring.scope, scoring.total, scoring.done) == (JobState.QUEUED, "generation_run", 6, 0)
    assert scoring.reward_model_sha256 == reward_model.sha256
    assert len(scoring.reward_model_sha256) == 64
    answers = answers_of(scoring)
    assert [a.candidate for a in answers] == list(
        Candidate.objects.filter(run=run).order_by("prompt__index", "sample").values_list("pk", flat=True)
    )
    first = answers[0].messages
    assert first == [{"role": "user", "content": "Question 0?"}, {"role": "assistant", "content": "Answer 0 to 0."}]
    event = AuditEvent.objects.get(action="evaluation.scoring_run_start")
    assert event.payload["answers"] == 6
    assert event.payload["reward_model_sha256"] == reward_model.sha256
    assert event.actor == personas.project_admin


def test_it_scores_every_candidate_of_the_projects_comparisons_without_a_generation_run(
    personas: Personas, reward_model: RewardModel
) -> None:
    scoring = _start(personas, reward_model)
    items = Item.objects.filter(project=personas.project, kind="comparison")
    expected = sum(len(item.candidates) for item in items)
    assert expected > 0
    assert (scoring.scope, scoring.total, scoring.generation_run) == ("comparisons", expected, None)
    answers = answers_of(scoring)
    item = items.order_by("pk").first()
    assert item is not None
    assert answers[0].item == item.pk
    assert answers[0].index == 0
    assert answers[0].messages == [*item.messages, {"role": "assistant", "content": item.candidates[0]["content"]}]


def test_it_refuses_a_reward_model_of_another_project(
    personas: Personas, model: BaseModel, reward_model: RewardModel
) -> None:
    with pytest.raises(DomainError) as refused:
        services.scoring_run_start(actor=personas.outsider, project=personas.other_project, reward_model=reward_model)
    assert (refused.value.field, refused.value.status) == ("reward_model", 404)
    _no_run_written()


def test_it_refuses_a_generation_run_of_another_project_or_one_not_succeeded(
    personas: Personas, model: BaseModel, reward_model: RewardModel
) -> None:
    theirs = answered_run(personas, model, project=personas.other_project)
    with pytest.raises(DomainError) as refused:
        _start(personas, reward_model, theirs)
    assert (refused.value.field, refused.value.status) == ("generation_run", 404)
    ours = answered_run(personas, model)
    GenerationRun.objects.filter(pk=ours.pk).update(state=JobState.FAILED)
    ours.refresh_from_db()
    with pytest.raises(DomainError, match=r"has not succeeded \(failed\)") as refused:
        _start(personas, reward_model, ours)
    assert refused.value.field == "generation_run"
    _no_run_written()


def test_it_refuses_a_reward_model_that_reads_another_tokenizer_naming_both_models(
    personas: Personas, reward_model: RewardModel, tmp_path: Path
) -> None:
    other = ready_model(personas.staff, make_tiny_model(tmp_path / "other", seed=5, vocab_size=400), name="other")
    run = answered_run(personas, other)
    with pytest.raises(DomainError) as refused:
        _start(personas, reward_model, run)
    message = refused.value.message
    assert refused.value.field == "reward_model"
    assert "tokenizer of tiny" in message
    assert "tokenizer of other" in message
    assert str(reward_model) in message
    _no_run_written()


def test_it_refuses_when_nothing_is_left_to_score(
    personas: Personas, model: BaseModel, reward_model: RewardModel
) -> None:
    empty = answered_run(personas, model, answers=0)
    with pytest.raises(DomainError, match="Nothing to score"):
        _start(personas, reward_model, empty)
    _no_run_written()
    # Every answer scored already by this reward model: nothing left either.
    run = answered_run(personas, model)
    first = _start(personas, reward_model, run)
    for candidate in Candidate.objects.filter(run=run):
        RewardScore.objects.create(run=first, reward_model=reward_model, candidate=candidate, score=0.5)
    with pytest.raises(DomainError, match="Nothing to score"):
        _start(personas, reward_model, run)


def test_it_cancels_a_queued_run_at_once_and_refuses_to_cancel_it_twice(
    personas: Personas, model: BaseModel, reward_model: RewardModel
) -> None:
    scoring = services.scoring_run_cancel(actor=personas.project_admin, run=_start(personas, reward_model))
    assert scoring.state == JobState.CANCELLED
    assert scoring.failure_reason == "Cancelled by project_admin before it started."
    events = AuditEvent.objects.filter(action__startswith="evaluation.scoring_run").order_by("seq")
    assert [event.action.rsplit(".", 1)[1] for event in events] == [
        "scoring_run_start", "scoring_run_cancel", "scoring_run_cancelled"
    ]  # fmt: skip
    with pytest.raises(DomainError) as refused:
        services.scoring_run_cancel(actor=personas.project_admin, run=scoring)
    assert refused.value.status == 409


def test_it_stores_each_score_once_and_checks_the_count_at_the_end(
    personas: Personas, model: BaseModel, reward_model: RewardModel
) -> None:
    run = answered_run(personas, model)
    scoring = _start(personas, reward_model, run)
    began = services.scoring_run_begin(run_id=scoring.pk, worker="gpu@test", environment={"code_version": "x"})
    assert began is not None
    assert began.state == JobState.RUNNING
    assert services.scoring_run_begin(run_id=scoring.pk, worker="gpu@test", environment={}) is None
    ids = list(Candidate.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))
    scores = [{"candidate": pk, "item": None, "index": None, "score": n / 4} for n, pk in enumerate(ids)]
    assert services.scoring_run_progress(run=began, scores=scores[:2], seconds=0.25) is False
    # A score sent again (a pump repeated after a database hiccup) is kept once.
    services.scoring_run_progress(run=began, scores=scores[1:2], seconds=0.0)
    assert RewardScore.objects.filter(run=scoring).count() == 2
    ended = services.scoring_run_finish(run=began, state=JobState.SUCCEEDED)
    assert ended.state == JobState.FAILED
    assert ended.failure_reason == "The run scored 2 answers of 4."

    again = _start(personas, reward_model, run)
    assert again.total == 2, "the answers scored already are left out"
    began = services.scoring_run_begin(run_id=again.pk, worker="gpu@test", environment={})
    assert began is not None
    services.scoring_run_progress(run=began, scores=scores[2:], seconds=0.5)
    ended = services.scoring_run_finish(run=began, state=JobState.SUCCEEDED, result={"network": {"refused": []}})
    assert ended.state == JobState.SUCCEEDED, ended.failure_reason
    assert (ended.done, ended.seconds, ended.candidates_per_second) == (2, 0.5, 4.0)
    stored = dict(RewardScore.objects.filter(reward_model=reward_model).values_list("candidate_id", "score"))
    assert stored == {pk: n / 4 for n, pk in enumerate(ids)}
    assert AuditEvent.objects.filter(action="evaluation.scoring_run_succeeded", object_id=str(again.pk)).exists()


def test_it_fails_a_run_whose_worker_went_silent_as_worker_lost(
    personas: Personas, model: BaseModel, reward_model: RewardModel
) -> None:
    scoring = _start(personas, reward_model, answered_run(personas, model))
    assert services.scoring_run_begin(run_id=scoring.pk, worker="gpu@gone", environment={}) is not None
    assert services.scoring_runs_reap() == []
    ScoringRun.objects.filter(pk=scoring.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.scoring_runs_reap() == [scoring.pk]
    scoring.refresh_from_db()
    assert scoring.state == JobState.FAILED
    assert scoring.failure_reason.startswith("Worker lost: the gpu worker gpu@gone stopped supervising this run")
    other = _start(personas, reward_model, answered_run(personas, model))
    services.scoring_run_begin(run_id=other.pk, worker="gpu@restarted", environment={})
    assert services.scoring_runs_fail_orphans(worker="gpu@restarted") == [other.pk]
