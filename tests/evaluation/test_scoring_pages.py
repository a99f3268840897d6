"""Scoring runs on the pages and the API (no worker): the form started from a generation run's page, the run's
live page and its cancel, the API's start, detail with the scores summed up, cancel and refusals."""

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evaluation.models import Candidate, GenerationRun, RewardScore, ScoringRun
from releases.models import Release
from tests.conftest import ClientFor, Personas
from tests.evaluation.scoring_helpers import reward_model_row
from tests.evaluation.test_scoring_runs import answered_run
from tests.training.helpers import preference_release
from training.models import BaseModel, JobState, RewardModel


@pytest.fixture
def setup(personas: Personas) -> dict[str, Any]:
    model = BaseModel.objects.create(
        name="page-model", path="/models/page", state="ready", content_hash="p" * 64, registered_by=personas.staff
    )
    release: Release = preference_release(personas.project, personas.data_lead, personas.reviewer, count=4)
    reward_model = reward_model_row(
        project=personas.project, actor=personas.project_admin, base_model=model, release=release
    )
    return {"model": model, "reward_model": reward_model, "run": answered_run(personas, model)}


def test_it_starts_a_run_from_a_generation_runs_page_and_follows_it(
    personas: Personas, setup: dict[str, Any], client_for: ClientFor
) -> None:
    project, run = personas.project, setup["run"]
    admin = client_for(personas.project_admin)
    page = admin.get(f"/projects/{project.pk}/generation/{run.pk}/").content.decode()
    assert f"/projects/{project.pk}/scoring/new/?generation_run={run.pk}" in page
    form = admin.get(f"/projects/{project.pk}/scoring/new/?generation_run={run.pk}").content.decode()
    assert f'<option value="{run.pk}" selected>' in form
    started = admin.post(
        f"/projects/{project.pk}/scoring/new/",
        {"reward_model": setup["reward_model"].pk, "generation_run": run.pk, "batch_size": 4},
    )
    scoring = ScoringRun.objects.get()
    assert started.status_code == 302
    assert started["Location"] == f"/projects/{project.pk}/scoring/{scoring.pk}/"
    assert (scoring.total, scoring.batch_size, scoring.generation_run_id) == (4, 4, run.pk)
    live = admin.get(f"/projects/{project.pk}/scoring/{scoring.pk}/?fragment=status", headers={"HX-Request": "true"})
    assert "0 of 4 answers" in live.content.decode()
    assert "waiting for a gpu worker" in live.content.decode()
    listed = admin.get(f"/projects/{project.pk}/scoring/").content.decode()
    assert f"generation run #{run.pk}" in listed
    cancelled = admin.post(f"/projects/{project.pk}/scoring/{scoring.pk}/cancel/")
    assert cancelled.status_code == 302
    scoring.refresh_from_db()
    assert scoring.state == JobState.CANCELLED


def test_it_names_the_refusal_on_the_form(personas: Personas, setup: dict[str, Any], client_for: ClientFor) -> None:
    run: GenerationRun = setup["run"]
    GenerationRun.objects.filter(pk=run.pk).update(state=JobState.FAILED)
    answer = client_for(personas.project_admin).post(
        f"/projects/{personas.project.pk}/scoring/new/",
        {"reward_model": setup["reward_model"].pk, "generation_run": run.pk, "batch_size": 4},
    )
    assert answer.status_code == 400
    assert not ScoringRun.objects.exists()


def test_it_starts_reads_and_cancels_runs_through_the_api(
    personas: Personas, setup: dict[str, Any], client_for: ClientFor
) -> None:
    project, reward_model = personas.project, setup["reward_model"]
    admin = client_for(personas.project_admin)
    base = f"/api/v1/projects/{project.pk}/scoring-runs/"
    started = admin.post(
        base, {"reward_model": reward_model.pk, "generation_run": setup["run"].pk}, content_type="application/json"
    )
    assert started.status_code == 202, started.content
    body = started.json()
    assert (body["state"], body["scope"], body["total"], body["reward_model_sha256"]) == (
        "queued", "generation_run", 4, reward_model.sha256
    )  # fmt: skip
    scoring = ScoringRun.objects.get(pk=body["id"])
    for n, candidate in enumerate(Candidate.objects.filter(run=setup["run"]).order_by("pk")[:2]):
        RewardScore.objects.create(run=scoring, reward_model=reward_model, candidate=candidate, score=float(n))
    detail = admin.get(f"{base}{scoring.pk}/").json()
    assert detail["scores"] == {"count": 2, "mean": 0.5, "stdev": pytest.approx(0.5), "low": 0.0, "high": 1.0}
    with CaptureQueriesContext(connection) as one:
        assert admin.get(base).status_code == 200
    comparisons = admin.post(base, {"reward_model": reward_model.pk}, content_type="application/json")
    assert comparisons.status_code == 202
    assert comparisons.json()["scope"] == "comparisons"
    with CaptureQueriesContext(connection) as two:
        listed = admin.get(base)
    assert [row["id"] for row in listed.json()["results"]] == [comparisons.json()["id"], scoring.pk]
    assert len(two) == len(one), "the list reads its rows' joins at once"
    assert admin.post(f"{base}{scoring.pk}/cancel/").json()["state"] == "cancelled"
    again = admin.post(f"{base}{scoring.pk}/cancel/")
    assert again.status_code == 409


def test_it_refuses_another_projects_reward_model_and_non_admins(
    personas: Personas, setup: dict[str, Any], client_for: ClientFor
) -> None:
    other_base = BaseModel.objects.get(pk=setup["model"].pk)
    release = preference_release(personas.other_project, personas.outsider, personas.outsider, count=4)
    theirs: RewardModel = reward_model_row(
        project=personas.other_project, actor=personas.outsider, base_model=other_base, release=release
    )
    base = f"/api/v1/projects/{personas.project.pk}/scoring-runs/"
    refused = client_for(personas.project_admin).post(
        base, {"reward_model": theirs.pk}, content_type="application/json"
    )
    assert refused.status_code == 404
    assert "reward_model" in refused.content.decode()
    for persona in (personas.annotator, personas.reviewer):
        answer = client_for(persona).post(
            base, {"reward_model": setup["reward_model"].pk}, content_type="application/json"
        )
        assert answer.status_code == 404
        assert client_for(persona).get(base).status_code == 404
    assert not ScoringRun.objects.exists()
