"""Builders for evaluation tests: an evaluation whose generation runs have answered (rows written as a finished
run writes them: test data for the judging and results path), and judging through the preference API."""

import uuid
from collections.abc import Callable
from typing import Any

from django.test import Client

from accounts.models import User
from annotation.models import AnnotationSettings, Item
from evaluation.judging import DEFAULT_DECODING, adapter_label, base_model_label
from evaluation.models import Candidate, Evaluation, EvaluationSystem, GenerationPrompt, GenerationRun
from releases.splits import prompt_digest
from tests.access_matrix import matrix_adapter
from tests.conftest import Personas
from tests.preferences.helpers import letter_of
from training.models import Adapter, BaseModel

VARIANTS = "xyzuvw"


def answered_evaluation(
    p: Personas,
    *,
    prompts: list[str],
    systems: int = 2,
    metadata: Callable[[int], dict[str, Any]] = lambda i: {},
    k: int = 2,
    run_state: str = "succeeded",
) -> Evaluation:
    """An evaluation of project A's adapter against its base model (and further base models), each system's run
    having answered every prompt with "Reply <i> variant <x>" (no model name in any answer). ``run_state`` is
    that of system 1's run; the others succeeded."""
    AnnotationSettings.objects.update_or_create(project=p.project, defaults={"annotators_per_item": k})
    adapter = Adapter.objects.select_related("base_model").get(pk=matrix_adapter(p))
    specs: list[tuple[BaseModel, Adapter | None, str]] = [
        (adapter.base_model, adapter, adapter_label(adapter)),
        (adapter.base_model, None, base_model_label(adapter.base_model)),
    ]
    for n in range(2, systems):
        other = BaseModel.objects.create(
            name=f"judge-model-{n}", path=f"/models/judge-{n}", state="ready", content_hash="d" * 64,
            registered_by=p.staff,
        )  # fmt: skip
        specs.append((other, None, base_model_label(other)))
    evaluation = Evaluation.objects.create(
        project=p.project, name="Blind check", source="upload", decoding=DEFAULT_DECODING,
        prompt_count=len(prompts), created_by=p.project_admin,
    )  # fmt: skip
    for position, (base_model, adapter_or_none, label) in enumerate(specs):
        run = GenerationRun.objects.create(
            project=p.project, base_model=base_model, adapter=adapter_or_none, base_model_hash="b" * 64,
            source="upload", decoding=DEFAULT_DECODING, evaluation=evaluation,
            state=run_state if position == 1 else "succeeded",
            prompt_count=len(prompts), prompts_done=len(prompts), created_by=p.project_admin,
            failure_reason="CUDA out of memory" if run_state == "failed" and position == 1 else "",
        )  # fmt: skip
        EvaluationSystem.objects.create(
            evaluation=evaluation, position=position, label=label, base_model=base_model, adapter=adapter_or_none,
            run=run,
        )  # fmt: skip
        for index, text in enumerate(prompts):
            messages = [{"role": "user", "content": text}]
            prompt = GenerationPrompt.objects.create(
                run=run, index=index, messages=messages, metadata=metadata(index), digest=prompt_digest(messages)
            )
            Candidate.objects.create(
                run=run, prompt=prompt, sample=0, text=f"Reply {index} variant {VARIANTS[position]}.", seed=7,
                prompt_tokens=5, completion_tokens=7, seconds=0.1, finish_reason="stop",
            )  # fmt: skip
    return evaluation


def run_with_an_answer(p: Personas) -> GenerationRun:
    """A generation run of project A with one stored (scrubbed) answer; no gpu worker takes it."""
    from evaluation import services as evaluation_services

    run = evaluation_services.generation_run_create(
        actor=p.project_admin, project=p.project, base_model=BaseModel.objects.get(), source="upload",
        prompts=[{"messages": [{"role": "user", "content": "Which fee applies?"}]}], decoding={},
        source_name="fees.jsonl",
    )  # fmt: skip
    Candidate.objects.create(
        run=run, prompt=run.prompts.get(), sample=0, text="The standard fee.", seed=42, prompt_tokens=9,
        completion_tokens=4, seconds=0.01, finish_reason="stop",
    )  # fmt: skip
    return run


def system_of(item: Item, candidate: int) -> int:
    return int(item.candidates[candidate]["provenance"]["extra"]["system"])


def prompt_index(item: Item) -> int:
    return int(item.external_id.rsplit("-", 1)[1])


def judge_through_api(
    evaluation: Evaluation, users: list[User], outcome: Callable[[int, User], str]
) -> list[dict[str, Any]]:
    """Every comparison each user is handed, judged through the API: ``outcome(prompt index, user)`` is "win",
    "tie" or "loss" for system 0 against system 1. Returns what the next-comparison endpoint answered."""
    judging = evaluation.judging_project
    assert judging is not None
    answers: list[dict[str, Any]] = []
    for user in users:
        client = Client()
        client.force_login(user)
        while True:
            response = client.post(f"/api/v1/projects/{judging.pk}/comparisons/next/")
            if response.status_code == 204:
                break
            assert response.status_code == 200, response.content
            shown = response.json()
            answers.append(shown)
            item = Item.objects.get(pk=shown["id"])
            mine = next(c for c in range(len(item.candidates)) if system_of(item, c) == 0)
            theirs = next(c for c in range(len(item.candidates)) if system_of(item, c) == 1)
            verdict = outcome(prompt_index(item), user)
            choice = {"win": letter_of(user, item, mine), "loss": letter_of(user, item, theirs), "tie": "tie"}[verdict]
            body = {"choice": choice, "strength": 2, "idempotency_key": uuid.uuid4().hex, "time_spent_ms": 20000}
            sent = client.post(
                f"/api/v1/projects/{judging.pk}/comparisons/{item.pk}/judgements/",
                body,
                content_type="application/json",
            )
            assert sent.status_code == 201, sent.content
    return answers
