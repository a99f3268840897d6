"""A round's pairs and refusals, as services (no worker): the least-sure policy shows the experts the pairs whose
reward scores are closest, records the policy and both scores with each pair and in the comparison's
provenance, and never shows the scores on the annotator's page; a round refuses to start while the previous one
is open, without the reward model its policy needs, or with a reward model that reads another tokenizer."""

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import Item
from core.errors import DomainError
from evaluation import services as evaluation_services
from evaluation.models import Candidate, DeploymentTarget, GenerationRun, RewardScore, ScoringRun
from rounds import services
from rounds.models import Round, RoundState
from tests.conftest import Personas
from tests.rounds.helpers import prompt_file
from tests.training.helpers import preference_release, ready_model
from training.inspection import tokenizer_hash
from training.models import BaseModel, JobState, RewardModel, TrainingJob

PROMPTS = ["How do I reset my card PIN?", "Which fee applies to a wire abroad?"]
# Four answers per prompt with their rewards: the closest pair of the first prompt is (b, c) at 0.05 apart,
# of the second (w, z) at 0.01 apart. A random pair would seldom be both.
SCORES = [
    {"a": 2.0, "b": 0.5, "c": 0.55, "d": -1.0},
    {"w": 1.0, "x": 3.0, "y": -2.0, "z": 1.01},
]


def _target(personas: Personas, model: BaseModel) -> DeploymentTarget:
    return evaluation_services.deployment_target_create(
        actor=personas.project_admin, project=personas.project, name="assistant", base_model=model
    )


def _reward_model(personas: Personas, model: BaseModel, *, tokenizer: str | None = None) -> RewardModel:
    """A registered reward model's row (the scores below stand for what it gave; nothing loads it here)."""
    release = preference_release(personas.project, personas.data_lead, personas.reviewer, count=4)
    now = timezone.now()
    job = TrainingJob.objects.create(
        project=personas.project, kind="reward", release=release, base_model=model, config={}, config_hash="0" * 64,
        state=JobState.SUCCEEDED, created_by=personas.project_admin,
    )  # fmt: skip
    return RewardModel.objects.create(
        job=job, project=personas.project, release=release, base_model=model, started_by=personas.project_admin,
        tokenizer_hash=tokenizer or tokenizer_hash(model.files), name="rm", storage_prefix=f"reward/{job.pk}",
        sha256="c" * 64, size_bytes=7, release_hash=release.hash, base_model_hash=model.content_hash,
        config={}, config_hash="0" * 64, seed=42, code_version="test", started_at=now, finished_at=now,
    )  # fmt: skip


def _scored_round(personas: Personas, model: BaseModel, reward_model: RewardModel) -> Round:
    """A least-sure round whose generation run answered (four candidates a prompt) and whose scoring run
    scored them as ``SCORES`` says: the rows a finished run and a finished scoring run leave."""
    round_ = services.round_start(
        actor=personas.project_admin, project=personas.project, target=_target(personas, model), source="upload",
        upload=prompt_file(PROMPTS), fmt="chat_jsonl", source_name="new.jsonl", candidates_per_prompt=4,
        pairs_per_prompt=1, pair_policy="least_sure", reward_model=reward_model, dpo_preset="cpu_check",
    )  # fmt: skip
    run = round_.generation_run
    assert run is not None
    scoring = ScoringRun.objects.create(
        project=personas.project, reward_model=reward_model, reward_model_sha256=reward_model.sha256,
        scope="generation_run", generation_run=run, state=JobState.SUCCEEDED, created_by=personas.project_admin,
    )  # fmt: skip
    for prompt, scores in zip(run.prompts.order_by("index"), SCORES, strict=True):
        for sample, (text, score) in enumerate(scores.items()):
            candidate = Candidate.objects.create(
                run=run, prompt=prompt, sample=sample, text=f"Answer {text}.", seed=sample, prompt_tokens=5,
                completion_tokens=2, seconds=0.01, finish_reason="stop",
            )  # fmt: skip
            RewardScore.objects.create(run=scoring, reward_model=reward_model, candidate=candidate, score=score)
    GenerationRun.objects.filter(pk=run.pk).update(state=JobState.SUCCEEDED)
    Round.objects.filter(pk=round_.pk).update(state=RoundState.SCORING, scoring_run=scoring)
    return services.round_advance(round_id=round_.pk)


def test_it_shows_the_experts_the_pairs_the_reward_model_is_least_sure_about(
    personas: Personas, tiny_model_dir: Path
) -> None:
    model = ready_model(personas.staff, tiny_model_dir)
    round_ = _scored_round(personas, model, _reward_model(personas, model))
    assert round_.state == RoundState.JUDGING, round_.failure_reason
    pairs = list(round_.pairs.select_related("first", "second").order_by("prompt__index"))
    assert [{p.first.text, p.second.text} for p in pairs] == [{"Answer b.", "Answer c."}, {"Answer w.", "Answer z."}]
    assert [round(p.margin or 0, 6) for p in pairs] == [0.05, 0.01]
    assert {p.policy for p in pairs} == {"least_sure"}
    assert (pairs[0].first_score, pairs[0].second_score) in {(0.5, 0.55), (0.55, 0.5)}
    # The comparisons imported for the pairs carry the round, the policy and each answer's score.
    items = Item.objects.filter(pk__in=[p.item_id for p in pairs])
    assert items.count() == 2
    for item in items:
        assert f"round-{round_.number}" in item.metadata["tags"]
        for candidate in item.candidates:
            where = candidate["provenance"]["extra"]
            assert where["pair_policy"] == "least_sure"
            assert where["reward_model"] == round_.reward_model_id
            assert where["round"] == round_.number
            assert where["reward_score"] in {0.5, 0.55, 1.0, 1.01}


def test_it_never_shows_the_annotator_a_reward_score(personas: Personas, tiny_model_dir: Path) -> None:
    model = ready_model(personas.staff, tiny_model_dir)
    round_ = _scored_round(personas, model, _reward_model(personas, model))
    client = Client()
    client.force_login(personas.annotator)
    handed = client.post(f"/api/v1/projects/{personas.project.pk}/comparisons/next/")
    assert handed.status_code == 200, handed.content
    body = handed.content.decode()
    for hidden in ("reward", "0.55", "least_sure"):
        assert hidden not in body
    page = client.get(f"/projects/{personas.project.pk}/compare/{handed.json()['id']}/")
    assert page.status_code == 200
    assert "reward" not in page.content.decode().lower().replace("reward models", "")
    assert round_.pairs.count() == 2


def test_it_refuses_a_round_while_the_previous_one_is_open(personas: Personas, tiny_model_dir: Path) -> None:
    model = ready_model(personas.staff, tiny_model_dir)
    target = _target(personas, model)
    start: dict[str, Any] = {"actor": personas.project_admin, "project": personas.project, "target": target,
                             "source": "upload", "fmt": "chat_jsonl", "dpo_preset": "cpu_check"}  # fmt: skip
    services.round_start(**start, upload=prompt_file(PROMPTS))
    with pytest.raises(DomainError) as refused:
        services.round_start(**start, upload=prompt_file(PROMPTS))
    assert refused.value.status == 409
    assert "Round 1 is still generating" in refused.value.message
    assert Round.objects.filter(project=personas.project).count() == 1


def test_it_refuses_a_scored_policy_without_a_reward_model_or_with_another_tokenizers(
    personas: Personas, tiny_model_dir: Path
) -> None:
    model = ready_model(personas.staff, tiny_model_dir)
    target = _target(personas, model)
    start: dict[str, Any] = {"actor": personas.project_admin, "project": personas.project, "target": target,
                             "source": "upload", "fmt": "chat_jsonl", "dpo_preset": "cpu_check"}  # fmt: skip
    with pytest.raises(DomainError) as missing:
        services.round_start(**start, upload=prompt_file(PROMPTS), pair_policy="least_sure")
    assert missing.value.field == "reward_model"
    other = _reward_model(personas, model, tokenizer=uuid.uuid4().hex * 2)
    with pytest.raises(DomainError) as foreign:
        services.round_start(**start, upload=prompt_file(PROMPTS), pair_policy="best_vs_worst", reward_model=other)
    assert foreign.value.field == "reward_model"
    assert "another tokenizer" in foreign.value.message
    assert not Round.objects.filter(project=personas.project).exists()
    assert not GenerationRun.objects.filter(project=personas.project).exists()


def test_it_answers_404_to_a_persona_who_may_not_run_rounds(personas: Personas, tiny_model_dir: Path) -> None:
    model = ready_model(personas.staff, tiny_model_dir)
    target = _target(personas, model)
    for user in (personas.annotator, personas.reviewer, personas.data_lead, personas.outsider):
        client = Client()
        client.force_login(user)
        answer = client.post(
            f"/api/v1/projects/{personas.project.pk}/rounds/",
            {"target": target.pk, "source": "project_items", "candidates_per_prompt": 2},
            content_type="application/json",
        )
        assert answer.status_code in {403, 404}, (user, answer.status_code)
        if user == personas.outsider:
            assert answer.status_code == 404
    assert not Round.objects.exists()


def test_it_fails_a_round_whose_pairs_the_project_already_holds_instead_of_waiting(
    personas: Personas, tiny_model_dir: Path
) -> None:
    """The same prompts answered the same way as an earlier round (its policy unchanged, the same seed): the
    import finds every pair a duplicate, and the round fails saying so rather than wait for judgements that
    cannot come."""
    model = ready_model(personas.staff, tiny_model_dir)
    reward_model = _reward_model(personas, model)
    first = _scored_round(personas, model, reward_model)
    services.round_end(actor=personas.project_admin, round_=first, reason="Tried again.")
    DeploymentTarget.objects.filter(project=personas.project).update(name="assistant-before")  # a new one below
    again = _scored_round(personas, model, reward_model)
    assert again.state == RoundState.FAILED
    assert "already a comparison of the project" in again.failure_reason
    assert not again.pairs.exists()


def test_it_fails_a_round_whose_release_holds_nothing_to_evaluate_on_before_training(
    personas: Personas, tiny_model_dir: Path
) -> None:
    from tests.releases.helpers import build

    model = ready_model(personas.staff, tiny_model_dir)
    round_ = _scored_round(personas, model, _reward_model(personas, model))
    release = build(personas.project, personas.data_lead, name="no held-out rows", eval_fraction=0.0)
    assert release.eval_rows == 0
    Round.objects.filter(pk=round_.pk).update(state=RoundState.RELEASING, release=release)
    round_ = services.round_advance(round_id=round_.pk)
    assert round_.state == RoundState.FAILED
    assert "has no held-out rows" in round_.failure_reason
    assert "nothing was trained" in round_.failure_reason
    assert not TrainingJob.objects.filter(project=personas.project, kind="dpo").exists()
