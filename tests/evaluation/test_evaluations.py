"""Starting a blind evaluation (the training-split refusal) and building its judging project."""

import json

import pytest
from django.test import Client

from accounts.models import Membership, Role
from annotation.models import Item
from core.errors import DomainError
from evaluation import services
from evaluation.models import Evaluation, EvaluationState, GenerationRun
from evaluation.tasks import evaluation_advance_task
from tests.access_matrix import matrix_adapter
from tests.conftest import Personas
from tests.evaluation.judging_helpers import answered_evaluation, judge_through_api, system_of
from training.models import Adapter

PROMPTS = [f"How do I close account number {n}?" for n in range(8)]


def _adapter(p: Personas) -> Adapter:
    return Adapter.objects.select_related("base_model").get(pk=matrix_adapter(p))


def test_it_refuses_prompts_in_a_training_split_and_writes_nothing(personas: Personas) -> None:
    adapter = _adapter(personas)
    trained = Item.objects.filter(project=personas.project).order_by("id").first()
    assert trained is not None
    prompts = [{"messages": trained.messages}, {"messages": [{"role": "user", "content": "A fresh question?"}]}]
    with pytest.raises(DomainError) as refused:
        services.evaluation_start(
            actor=personas.project_admin, project=personas.project, adapter=adapter,
            against={"kind": "base_model"}, source="upload", prompts=prompts,
        )  # fmt: skip
    assert "1 of 2 prompts are in a training split" in refused.value.message
    assert trained.messages[-1]["content"][:40] in refused.value.message
    assert not Evaluation.objects.exists()
    assert not GenerationRun.objects.exists()


def test_it_refuses_through_the_api_with_the_reason(personas: Personas) -> None:
    adapter = _adapter(personas)
    client = Client()
    client.force_login(personas.project_admin)
    body = {"adapter": adapter.pk, "against": {"kind": "base_model"}, "source": "project_items"}
    response = client.post(
        f"/api/v1/projects/{personas.project.pk}/evaluations/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400
    assert "in a training split" in json.dumps(response.json())
    assert not Evaluation.objects.exists()


def test_it_refuses_an_evaluation_without_prompts(personas: Personas) -> None:
    with pytest.raises(DomainError, match="no prompts"):
        services.evaluation_start(
            actor=personas.project_admin, project=personas.project, adapter=_adapter(personas),
            against={"kind": "base_model"}, source="upload", prompts=[],
        )  # fmt: skip


def test_it_refuses_the_same_model_on_both_sides(personas: Personas) -> None:
    adapter = _adapter(personas)
    with pytest.raises(DomainError, match="appears twice"):
        services.evaluation_start(
            actor=personas.project_admin, project=personas.project, adapter=adapter,
            against={"kind": "adapter", "adapter": adapter.pk}, source="upload",
            prompts=[{"messages": [{"role": "user", "content": "New?"}]}],
        )  # fmt: skip


def test_it_starts_one_generation_run_per_system(personas: Personas) -> None:
    evaluation = services.evaluation_start(
        actor=personas.project_admin, project=personas.project, adapter=_adapter(personas),
        against={"kind": "base_model"}, source="upload",
        prompts=[{"messages": [{"role": "user", "content": "A question nobody trained on?"}]}],
    )  # fmt: skip
    runs = [s.run for s in evaluation.systems.order_by("position")]
    assert len(runs) == 2
    assert all(r is not None and r.evaluation_id == evaluation.pk for r in runs)
    assert runs[0].decoding == runs[1].decoding  # type: ignore[union-attr]


def test_it_builds_blind_comparisons_in_a_judging_project(personas: Personas) -> None:
    evaluation = answered_evaluation(personas, prompts=PROMPTS, metadata=lambda i: {"topic": "fees"})
    evaluation = services.evaluation_advance(evaluation_id=evaluation.pk)
    assert evaluation.state == EvaluationState.JUDGING
    judging = evaluation.judging_project
    assert judging is not None
    items = list(Item.objects.filter(project=judging).order_by("id"))
    assert len(items) == len(PROMPTS)
    assert {system_of(item, 0) for item in items} == {0, 1}  # the stored order carries no signal
    assert all(sorted(system_of(item, c) for c in range(2)) == [0, 1] for item in items)
    assert items[0].metadata == {"topic": "fees"}
    roles = dict(Membership.objects.filter(project=judging).values_list("user__username", "role"))
    assert roles["annotator"] == Role.ANNOTATOR
    assert roles["project_admin"] == Role.PROJECT_ADMIN
    # the task a generation run sends when it ends changes nothing the second time
    assert evaluation_advance_task.run(evaluation_id=evaluation.pk) == EvaluationState.JUDGING


def _model_names(evaluation: Evaluation) -> set[str]:
    """Every name of the evaluation's systems: labels, base models and adapters."""
    names = set()
    for system in evaluation.systems.select_related("base_model", "adapter"):
        names |= {system.label, system.base_model.name} | ({system.adapter.name} if system.adapter else set())
    return names


def test_it_hides_every_model_name_from_annotators(personas: Personas) -> None:
    evaluation = services.evaluation_advance(evaluation_id=answered_evaluation(personas, prompts=PROMPTS).pk)
    judging = evaluation.judging_project
    assert judging is not None
    secrets = _model_names(evaluation)
    client = Client()
    client.force_login(personas.annotator)
    page = client.get(f"/projects/{judging.pk}/compare/", follow=True)
    assert page.status_code == 200
    assert "Reply" in page.content.decode()
    answer = client.post(f"/api/v1/projects/{judging.pk}/comparisons/next/")
    assert answer.status_code == 200
    assert "Reply" in answer.content.decode()
    for text in (page.content.decode(), answer.content.decode()):
        for secret in secrets:
            assert secret not in text, secret


def test_it_names_the_systems_by_code_wherever_people_who_judge_look(personas: Personas) -> None:
    """A reviewer judges in the judging project too, and its agreement page lists win rates per system: by a
    letter drawn per evaluation, never a model's name nor which side is the adapter under evaluation; nothing
    stored in the project names a model. The evaluation's own page names them."""
    evaluation = services.evaluation_advance(evaluation_id=answered_evaluation(personas, prompts=PROMPTS).pk)
    judging = evaluation.judging_project
    assert judging is not None
    secrets = _model_names(evaluation)
    stored = json.dumps([item.candidates for item in Item.objects.filter(project=judging)])
    codes = {c["provenance"]["model"] for item in Item.objects.filter(project=judging) for c in item.candidates}
    assert len(codes) == 2
    assert all(code.startswith("System ") for code in codes)
    judge_through_api(evaluation, [personas.annotator, personas.reviewer], lambda index, user: "win")

    client = Client()
    client.force_login(personas.reviewer)
    quality = client.get(f"/projects/{judging.pk}/quality/").content.decode()
    assert all(code in quality for code in codes)
    for text in (stored, quality):
        for secret in secrets:
            assert secret not in text, secret
    client.force_login(personas.project_admin)
    results = client.get(f"/projects/{personas.project.pk}/evaluations/{evaluation.pk}/").content.decode()
    assert all(system.label in results for system in evaluation.systems.all())


def test_it_fails_the_evaluation_when_a_run_failed(personas: Personas) -> None:
    evaluation = answered_evaluation(personas, prompts=PROMPTS[:2], run_state="failed")
    evaluation = services.evaluation_advance(evaluation_id=evaluation.pk)
    assert evaluation.state == EvaluationState.FAILED
    assert "CUDA out of memory" in evaluation.failure_reason
    assert evaluation.judging_project is None


def test_it_waits_while_a_run_is_going(personas: Personas) -> None:
    evaluation = answered_evaluation(personas, prompts=PROMPTS[:2], run_state="running")
    assert services.evaluation_advance(evaluation_id=evaluation.pk).state == EvaluationState.GENERATING


def test_it_routes_the_advance_task_to_the_default_queue() -> None:
    from enclave.celery import app

    assert app.amqp.router.route({}, "evaluation.evaluation_advance")["queue"].name == "default"


@pytest.mark.worker
def test_it_opens_judging_on_a_real_worker_when_the_runs_are_done(worker: object) -> None:
    from tests.conftest import make_personas

    evaluation = answered_evaluation(make_personas(), prompts=PROMPTS[:3])
    state = evaluation_advance_task.delay(evaluation_id=evaluation.pk).get(timeout=120)
    assert state == EvaluationState.JUDGING
    evaluation.refresh_from_db()
    assert Item.objects.filter(project=evaluation.judging_project).count() == 3


def test_it_fails_an_evaluation_whose_systems_answered_alike_with_the_reason(personas: Personas) -> None:
    from evaluation.models import Candidate

    evaluation = answered_evaluation(personas, prompts=["Same?", "Again?"])
    Candidate.objects.filter(run__evaluation=evaluation).update(text="The same answer.")
    evaluation = services.evaluation_advance(evaluation_id=evaluation.pk)
    assert evaluation.state == "failed"
    assert evaluation.judging_project is None
    assert "same answer to every prompt (2): there is nothing to judge" in evaluation.failure_reason


def test_it_judges_the_prompts_answered_differently_and_says_how_many_were_left_out(personas: Personas) -> None:
    from evaluation.models import Candidate

    evaluation = answered_evaluation(personas, prompts=["Same?", "Different?", "Also the same?"])
    alike = Candidate.objects.filter(run__evaluation=evaluation, prompt__index__in=[0, 2])
    for candidate in alike:  # both systems, word for word, up to the white space around it
        candidate.text = (
            f"  Answer to prompt {candidate.prompt.index}.\n"
            if candidate.run.adapter_id
            else (f"Answer to prompt {candidate.prompt.index}.")
        )
        candidate.save(update_fields=["text"])
    evaluation = services.evaluation_advance(evaluation_id=evaluation.pk)
    assert evaluation.state == EvaluationState.JUDGING
    assert evaluation.identical_answers == 2
    assert Item.objects.filter(project=evaluation.judging_project).count() == 1
    client = Client()
    client.force_login(personas.project_admin)
    page = client.get(f"/projects/{personas.project.pk}/evaluations/{evaluation.pk}/").content.decode()
    assert "2 left out of the judging: the systems gave the same answer" in page
    api = client.get(f"/api/v1/projects/{personas.project.pk}/evaluations/{evaluation.pk}/").json()
    assert api["identical_answers"] == 2


def test_it_scrubs_the_pii_of_uploaded_prompts_before_they_are_stored(personas: Personas) -> None:
    from evaluation.models import GenerationPrompt

    services.evaluation_start(
        actor=personas.project_admin, project=personas.project, adapter=_adapter(personas),
        against={"kind": "base_model"}, source="upload",
        prompts=[{"messages": [{"role": "user", "content": "I am jane.doe@example.com, may I close my account?"}]}],
    )  # fmt: skip
    stored = [p.messages[0]["content"] for p in GenerationPrompt.objects.all()]
    assert len(stored) == 2  # one run per system
    assert all("jane.doe@example.com" not in text and "[EMAIL_1]" in text for text in stored), stored
