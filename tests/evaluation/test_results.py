"""The results of a blind evaluation: win / tie / loss, win rates with the Wilson interval statsmodels gives,
per criterion, annotator and metadata value, a Bradley-Terry ranking of three systems, and Finish."""

import json
from typing import Any

import choix
import numpy as np
import pytest
from django.test import Client
from statsmodels.stats.proportion import proportion_confint

from accounts.models import User
from annotation.models import Item
from core.errors import DomainError
from evaluation import services
from evaluation.models import Evaluation, EvaluationState
from evaluation.results import evaluation_results
from preferences.models import AnnotatorQuality
from tests.conftest import Personas
from tests.evaluation.judging_helpers import answered_evaluation, judge_through_api, prompt_index, system_of
from tests.releases.helpers import judge

PROMPTS = [f"What does the fee on statement {n} cover?" for n in range(12)]


def _annotator_plan(index: int, user: User) -> str:
    if user.username == "annotator":
        return ("win", "win", "tie", "loss")[index % 4]
    return "win" if index % 3 else "loss"


def _expected(users: list[str]) -> tuple[int, int, int]:
    verdicts = [_annotator_plan(i, User(username=u)) for u in users for i in range(len(PROMPTS))]
    return verdicts.count("win"), verdicts.count("tie"), verdicts.count("loss")


def _judging(p: Personas, **kwargs: object) -> Evaluation:
    evaluation = answered_evaluation(p, prompts=PROMPTS, **kwargs)  # type: ignore[arg-type]
    return services.evaluation_advance(evaluation_id=evaluation.pk)


def _api_results(p: Personas, evaluation: Evaluation) -> dict[str, Any]:
    client = Client()
    client.force_login(p.data_lead)
    response = client.get(f"/api/v1/projects/{p.project.pk}/evaluations/{evaluation.pk}/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert isinstance(results, dict)
    return results


def test_it_gives_the_win_rate_and_interval_statsmodels_gives(personas: Personas) -> None:
    evaluation = _judging(personas)
    judge_through_api(evaluation, [personas.annotator, personas.reviewer], _annotator_plan)
    results = _api_results(personas, evaluation)
    wins, ties, losses = _expected(["annotator", "reviewer"])
    n = wins + ties + losses
    low, high = proportion_confint(wins + ties / 2, n, alpha=0.05, method="wilson")
    (row,) = results["head_to_head"]
    assert (row["wins"], row["ties"], row["losses"]) == (wins, ties, losses)
    assert row["win_rate"] == pytest.approx((wins + ties / 2) / n)
    assert (row["low"], row["high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["conclusive"] is (low > 0.5 or high < 0.5)
    assert row["system"] == 1
    assert row["adapter_id"] is None
    assert row["base_model_id"]
    assert results["method"] == "wilson"
    assert results["confidence"] == 0.95
    assert results["judgements"] == n
    assert results["prompts"] == len(PROMPTS)
    per_annotator = {r["annotator"]: r for r in results["per_annotator"]}
    a_wins, a_ties, a_losses = _expected(["annotator"])
    assert (per_annotator["annotator"]["wins"], per_annotator["annotator"]["ties"]) == (a_wins, a_ties)
    a_low, _ = proportion_confint(a_wins + a_ties / 2, a_wins + a_ties + a_losses, alpha=0.05, method="wilson")
    assert per_annotator["annotator"]["low"] == pytest.approx(a_low)


def test_it_shows_a_conclusive_banner_on_the_page(personas: Personas) -> None:
    evaluation = _judging(personas)
    judge_through_api(evaluation, [personas.annotator, personas.reviewer], lambda i, u: "win")
    client = Client()
    client.force_login(personas.project_admin)
    page = client.get(f"/projects/{personas.project.pk}/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="conclusive"' in page
    assert "the adapter wins" in page
    assert "Wilson" in page


def test_it_splits_by_criterion_and_metadata_value(personas: Personas) -> None:
    topics = lambda i: {"topic": "fees" if i % 2 else "cards", "channel": "chat"}  # noqa: E731
    evaluation = _judging(personas, metadata=topics)
    assert evaluation.judging_project is not None
    for item in Item.objects.filter(project=evaluation.judging_project):
        mine = next(c for c in range(2) if system_of(item, c) == 0)
        index = prompt_index(item)
        overall = mine if index % 2 else 1 - mine  # wins on fees, loses on cards
        judge(item, personas.annotator, {"criteria": {"accuracy": mine, "tone": "tie"}, "overall": overall})
    results = evaluation_results(evaluation)
    criteria = {r["criterion"]: r for r in results["per_criterion"]}
    assert (criteria["accuracy"]["wins"], criteria["accuracy"]["losses"]) == (len(PROMPTS), 0)
    assert criteria["tone"]["ties"] == len(PROMPTS)
    groups = {(r["key"], r["value"]): r for r in results["per_metadata"]}
    assert set(groups) == {("topic", "fees"), ("topic", "cards")}  # one channel only: not a split
    assert groups[("topic", "fees")]["wins"] == 6
    assert groups[("topic", "cards")]["losses"] == 6
    assert groups[("topic", "fees")]["conclusive"]
    assert groups[("topic", "fees")]["verdict"] == "wins"


def test_it_leaves_out_gold_and_excluded_annotators(personas: Personas) -> None:
    evaluation = _judging(personas)
    judging = evaluation.judging_project
    assert judging is not None
    items = list(Item.objects.filter(project=judging).order_by("id"))
    for item in items:
        judge(item, personas.annotator, {"winner": next(c for c in range(2) if system_of(item, c) == 0)})
        judge(item, personas.reviewer, {"winner": "tie"})
    AnnotatorQuality.objects.create(project=judging, annotator=personas.reviewer, excluded=True)
    Item.objects.filter(pk=items[0].pk).update(gold=0)
    (row,) = evaluation_results(evaluation)["head_to_head"]
    assert (row["wins"], row["ties"], row["losses"]) == (len(items) - 1, 0, 0)


def test_it_ranks_three_systems_with_bradley_terry(personas: Personas) -> None:
    evaluation = _judging(personas, systems=3)
    judging = evaluation.judging_project
    assert judging is not None
    assert judging.preferences.mode == "ranking"
    matrix = np.zeros((3, 3))
    for item in Item.objects.filter(project=judging):
        by_system = {system_of(item, c): c for c in range(3)}
        if prompt_index(item) % 4:
            order, tiers = [0, 1, 2], [[by_system[0]], [by_system[1]], [by_system[2]]]
        else:
            order, tiers = [1, 0, 2], [[by_system[1]], [by_system[0]], [by_system[2]]]
        judge(item, personas.annotator, {"ranking": tiers})
        for i, a in enumerate(order):
            for b in order[i + 1 :]:
                matrix[a, b] += 1
    results = evaluation_results(evaluation)
    ranking = results["ranking"]
    assert [r["system"] for r in ranking] == [0, 1, 2]
    expected = choix.ilsr_pairwise_dense(matrix, alpha=0.01)
    for row in ranking:
        assert row["strength"] == pytest.approx(expected[row["system"]])
        assert row["low"] <= row["strength"] <= row["high"]
    assert "bootstrap over prompts" in results["ranking_method"]
    assert [r["system"] for r in results["head_to_head"]] == [1, 2]


def test_it_freezes_the_results_when_finished(personas: Personas) -> None:
    evaluation = _judging(personas)
    with pytest.raises(DomainError, match="Nobody has judged"):
        services.evaluation_finish(actor=personas.project_admin, evaluation=evaluation)
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.JUDGING
    assert evaluation.results is None
    items = list(Item.objects.filter(project=evaluation.judging_project).order_by("id"))
    judge(items[0], personas.annotator, {"winner": "tie"})
    client = Client()
    client.force_login(personas.project_admin)
    response = client.post(f"/api/v1/projects/{personas.project.pk}/evaluations/{evaluation.pk}/finish/")
    assert response.status_code == 200, response.content
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.FINISHED
    assert evaluation.finished_by == personas.project_admin
    frozen = json.loads(json.dumps(evaluation.results))
    assert frozen["head_to_head"][0]["ties"] == 1
    judge(items[1], personas.annotator, {"winner": "tie"})  # a late judgement changes nothing frozen
    assert _api_results(personas, evaluation) == frozen


def test_it_shows_the_frozen_results_and_a_failed_evaluation_on_its_page(personas: Personas) -> None:
    evaluation = _judging(personas)
    item = Item.objects.filter(project=evaluation.judging_project).first()
    assert item is not None
    judge(item, personas.annotator, {"winner": next(c for c in range(2) if system_of(item, c) == 0)})
    services.evaluation_finish(actor=personas.project_admin, evaluation=evaluation)
    client = Client()
    client.force_login(personas.data_lead)
    page = client.get(f"/projects/{personas.project.pk}/evaluations/{evaluation.pk}/").content.decode()
    assert "(results frozen)" in page
    assert 'id="head-to-head"' in page
    assert 'id="finish"' not in page
    Evaluation.objects.filter(pk=evaluation.pk).update(state=EvaluationState.FAILED, failure_reason="Run #9 failed")
    page = client.get(f"/projects/{personas.project.pk}/evaluations/{evaluation.pk}/").content.decode()
    assert "Run #9 failed" in page
