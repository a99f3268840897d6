"""Builders for deployment tests: adapters registered through the training services (their jobs started by a
chosen person, their held-out figures given), finished evaluations with the results the evaluation app
freezes (test data, as the promotion gate reads it), and a cast for the four-eyes rules."""

from dataclasses import dataclass
from typing import Any

from accounts.models import Role, User
from evaluation.models import DeploymentTarget, Evaluation, EvaluationState, EvaluationSystem
from evaluation.services import deployment_target_create
from releases.models import Release
from tests.conftest import Personas
from tests.factories import MembershipFactory, UserFactory
from tests.releases.helpers import build, comparisons, judge
from training import services as training_services
from training.config import JobConfig
from training.models import Adapter, BaseModel, TrainingJob


@dataclass
class Cast:
    """Who does what: the admin who starts training jobs, another admin who asks for promotions, two
    approvers (neither of them), and the project admin persona (``starter``)."""

    starter: User
    requester: User
    approver: User
    second_approver: User


def cast(p: Personas) -> Cast:
    requester = UserFactory.create(username="requester")
    MembershipFactory.create(project=p.project, user=requester, role=Role.PROJECT_ADMIN)
    second = UserFactory.create(username="approver2")
    MembershipFactory.create(project=p.project, user=second, role=Role.APPROVER)
    return Cast(starter=p.project_admin, requester=requester, approver=p.approver, second_approver=second)


def base_model(p: Personas) -> BaseModel:
    if "base_model" not in p.made:
        p.made["base_model"] = BaseModel.objects.create(
            name="deploy-model", path="/models/deploy", state="ready", architecture="LlamaForCausalLM",
            parameter_count=1000, dtype="F32", linear_modules=["q_proj", "v_proj"], content_hash="b" * 64,
            registered_by=p.staff,
        )  # fmt: skip
    return p.made["base_model"]


def release(p: Personas) -> Release:
    if "release" not in p.made:
        for n, item in enumerate(comparisons(p.project, p.data_lead, ["Which fee applies?", "Is the card frozen?"])):
            judge(item, p.reviewer, {"winner": n % 2, "strength": 1})
        p.made["release"] = build(p.project, p.data_lead, eval_fraction=0.0)
    return p.made["release"]


def adapter(
    p: Personas,
    *,
    starter: User | None = None,
    before: dict[str, float] | None = None,
    after: dict[str, float] | None = None,
    sha: str = "c",
) -> Adapter:
    """A registered adapter of project A whose job ``starter`` (default: the project admin) started."""
    job = training_services.training_job_start(
        actor=starter or p.project_admin, project=p.project, kind="dpo", release=release(p),
        base_model=base_model(p), config=JobConfig.from_dict("dpo", {"max_steps": 2}),
    )  # fmt: skip
    TrainingJob.objects.filter(pk=job.pk).update(state="running")
    evaluation: dict[str, Any] = {"before": before or {}, "after": after or {}}
    return training_services.adapter_register(
        job=job, storage_prefix=f"adapters/{p.project.pk}/job-{job.pk}",
        files=[{"path": "adapter_model.safetensors", "size_bytes": 7, "sha256": sha * 64},
               {"path": "adapter_config.json", "size_bytes": 3, "sha256": "d" * 64}],
        result={"evaluation": evaluation, "train": {"steps": 2}}, hardware={"device": "cpu"},
        library_versions={"trl": "1.16.0"}, code_version="test",
    )  # fmt: skip


def evaluation(
    p: Personas,
    candidate: Adapter,
    against: Adapter | None,
    *,
    low: float = 0.62,
    high: float = 0.8,
    state: str = EvaluationState.FINISHED,
) -> Evaluation:
    """An evaluation of ``candidate`` against ``against`` (None: the base model alone) with frozen results."""
    wins, ties, losses = 70, 10, 20
    entry = {
        "system": 1, "label": "current", "adapter_id": against.pk if against else None,
        "base_model_id": base_model(p).pk, "wins": wins, "ties": ties, "losses": losses,
        "win_rate": (wins + ties / 2) / (wins + ties + losses), "low": low, "high": high, "conclusive": low > 0.5,
    }  # fmt: skip
    finished = state == EvaluationState.FINISHED
    made = Evaluation.objects.create(
        project=p.project, name=f"eval of {candidate.pk}", decoding={"temperature": 0.7}, state=state,
        results={"method": "wilson", "confidence": 0.95, "judgements": 100, "prompts": 50, "head_to_head": [entry]}
        if finished else None,
        created_by=p.project_admin,
    )  # fmt: skip
    EvaluationSystem.objects.create(
        evaluation=made, position=0, label="candidate", base_model=base_model(p), adapter=candidate
    )
    EvaluationSystem.objects.create(
        evaluation=made, position=1, label="current", base_model=base_model(p), adapter=against
    )
    return made


def target(p: Personas, current: Adapter | None = None, **values: Any) -> DeploymentTarget:
    return deployment_target_create(
        actor=p.project_admin, project=p.project, name=values.pop("name", "retail-banking-assistant"),
        base_model=base_model(p), current_adapter=current, **values,
    )  # fmt: skip
