"""A reward model's agreement with the experts' decided comparisons: accuracy over the pairs it scored (expert
ties left out, an adjudication over the majority, equal scores counting ½) with a 95 % Wilson interval, shown
on the agreement page and in its API to those who read them, and never on an annotator's comparison page."""

import math

import pytest
from django.utils import timezone

from annotation.models import Item
from evaluation.models import RewardScore, ScoringRun
from evaluation.reward_agreement import reward_agreement
from preferences.models import Adjudication
from tests.conftest import ClientFor, Personas
from tests.evaluation.scoring_helpers import reward_model_row
from tests.preferences.helpers import make_comparisons
from tests.releases.helpers import judge
from tests.training.helpers import preference_release
from training.models import BaseModel, JobState, RewardModel

Z = 1.959963984540054  # the 97.5 % point of the normal distribution


def _wilson(successes: float, n: int) -> tuple[float, float]:
    p, z2 = successes / n, Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def _scores(run: ScoringRun, item: Item, *values: float) -> None:
    for index, value in enumerate(values):
        RewardScore.objects.create(
            run=run, reward_model=run.reward_model, item=item, candidate_index=index, score=value
        )


@pytest.fixture
def scored(personas: Personas) -> tuple[RewardModel, RewardModel]:
    """Six comparisons decided by the experts and scored by a reward model:

    0: experts prefer 0, scores agree            → 1
    1: experts prefer 1, scores prefer 0          → 0
    2: experts prefer 0, equal scores             → ½
    3: experts call a tie                         → left out
    4: majority prefers 0, adjudicated 1; scores prefer 1 → 1
    5: experts prefer 1, only one answer scored   → left out
    and a second reward model that scored an undecided comparison only."""
    project, lead = personas.project, personas.data_lead
    model = BaseModel.objects.create(
        name="rm-base", path="/models/rm", state="ready", content_hash="d" * 64, registered_by=personas.staff
    )
    release = preference_release(project, lead, personas.reviewer, count=4)
    first = reward_model_row(project=project, actor=personas.project_admin, base_model=model, release=release)
    second = reward_model_row(project=project, actor=personas.project_admin, base_model=model, release=release)
    items = make_comparisons(project, lead, 7)
    winners: list[object] = [0, 1, 0, "tie", 0, 1]
    for item, winner in zip(items, winners, strict=False):
        judge(item, personas.reviewer, {"winner": winner, "strength": 1})
    judge(items[4], personas.project_admin, {"winner": 0, "strength": 1})
    Adjudication.objects.create(
        item=items[4], agreement=0.5, reviewer=personas.reviewer, result={"winner": 1, "strength": 2},
        decided_at=timezone.now(),
    )  # fmt: skip
    runs = {}
    for reward_model in (first, second):
        runs[reward_model.pk] = ScoringRun.objects.create(
            project=project, reward_model=reward_model, reward_model_sha256=reward_model.sha256, scope="comparisons",
            state=JobState.SUCCEEDED, created_by=personas.project_admin,
        )  # fmt: skip
    run = runs[first.pk]
    _scores(run, items[0], 1.0, 0.0)
    _scores(run, items[1], 2.0, 1.0)
    _scores(run, items[2], 0.5, 0.5)
    _scores(run, items[3], 3.0, -3.0)
    _scores(run, items[4], 0.0, 1.0)
    _scores(run, items[5], 4.0)
    _scores(runs[second.pk], items[6], 1.0, 2.0)
    return first, second


def test_it_measures_the_reward_models_accuracy_against_the_decided_comparisons(
    personas: Personas, scored: tuple[RewardModel, RewardModel]
) -> None:
    first, second = scored
    figures = {figure.reward_model: figure for figure in reward_agreement(personas.project)}
    figure = figures[first.pk]
    assert (figure.n, figure.agreed, figure.accuracy) == (4, 2.5, 0.625)
    low, high = _wilson(2.5, 4)
    assert figure.low == pytest.approx(low, abs=1e-12)
    assert figure.high == pytest.approx(high, abs=1e-12)
    assert (round(figure.low or 0, 6), round(figure.high or 0, 6)) == (0.219427, 0.908101)
    undecided = figures[second.pk]
    assert (undecided.n, undecided.accuracy, undecided.low, undecided.high) == (0, None, None, None)
    assert reward_agreement(personas.other_project) == []


def test_it_shows_the_figures_beside_the_human_agreement_and_never_to_annotators(
    personas: Personas, scored: tuple[RewardModel, RewardModel], client_for: ClientFor
) -> None:
    first, _ = scored
    page = client_for(personas.reviewer).get(f"/projects/{personas.project.pk}/quality/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="reward-models"' in body
    assert first.name in body
    assert "0.625" in body
    api = client_for(personas.data_lead).get(f"/api/v1/projects/{personas.project.pk}/agreement/")
    assert api.status_code == 200
    rows = {row["reward_model"]: row for row in api.json()["reward_models"]}
    assert (rows[first.pk]["n"], rows[first.pk]["accuracy"]) == (4, 0.625)
    assert client_for(personas.annotator).get(f"/projects/{personas.project.pk}/quality/").status_code == 404
    annotator = client_for(personas.annotator)
    handed = annotator.post(f"/api/v1/projects/{personas.project.pk}/comparisons/next/")
    assert handed.status_code == 200, handed.content
    page = annotator.get(f"/projects/{personas.project.pk}/compare/{handed.json()['id']}/")
    assert page.status_code == 200
    for text in (handed.content.decode(), page.content.decode()):
        assert "reward" not in text.lower().replace("reward models", "")
        assert first.name not in text
