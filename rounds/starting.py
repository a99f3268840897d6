"""Starting a round: everything checked first (the previous round has ended, the pair policy's reward model, K,
the decoding, the DPO config and that the policy's adapter can be continued), then the generation run of the
new prompts queued and the round recorded and audited. ``rounds.services`` moves it on from there."""

from typing import IO, Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import Project, User
from accounts.services import audit_event_record
from core.errors import DomainError
from evaluation import services as evaluation_services
from evaluation.decoding import Decoding
from evaluation.models import (
    DeploymentTarget,
    PromptSource,
)
from rounds.models import ENDED_STATES, POLICIES_NEEDING_SCORES, PairPolicy, Round
from training import services as training_services
from training.inspection import tokenizer_hash
from training.models import RewardModel

MAX_CANDIDATES = 8


def round_start(
    *,
    actor: User,
    project: Project,
    target: DeploymentTarget,
    source: str,
    candidates_per_prompt: int = 4,
    pairs_per_prompt: int = 1,
    pair_policy: str = PairPolicy.RANDOM,
    reward_model: RewardModel | None = None,
    decoding: dict[str, Any] | None = None,
    dpo_preset: str = "",
    dpo_values: dict[str, Any] | None = None,
    eval_fraction: float = 0.2,
    min_decided: int = 1,
    limit: int | None = None,
    upload: IO[bytes] | None = None,
    fmt: str = "",
    source_name: str = "",
) -> Round:
    """Start the next round on ``target``: everything is checked first (the previous round has ended, the pair
    policy's reward model reads text as the policy's base model does, K, the decoding, the DPO config and that
    the policy's adapter can be continued), then the generation run of the new prompts is queued. Raises
    ``DomainError``, writing nothing."""
    if target.project_id != project.pk:
        raise DomainError("No such deployment target in this project.", field="target", status=404)
    open_round = Round.objects.filter(project=project).exclude(state__in=ENDED_STATES).first()
    if open_round is not None:
        raise DomainError(
            f"Round {open_round.number} is still {open_round.get_state_display().lower()}; it must end (promoted, "
            "ended without promotion or cancelled) before the next round starts.",
            status=409,
        )
    if pair_policy not in PairPolicy.values:
        raise DomainError(f"The pair policy is one of {', '.join(PairPolicy.values)}.", field="pair_policy")
    if not 2 <= candidates_per_prompt <= MAX_CANDIDATES:
        raise DomainError(f"Generate 2 to {MAX_CANDIDATES} candidates per prompt.", field="candidates_per_prompt")
    most = candidates_per_prompt * (candidates_per_prompt - 1) // 2
    if not 1 <= pairs_per_prompt <= most:
        raise DomainError(
            f"With {candidates_per_prompt} candidates a prompt has at most {most} pairs.", field="pairs_per_prompt"
        )
    if not 0 < eval_fraction <= 0.5:
        raise DomainError("Hold out above 0 and at most half of the prompts for the evaluation.", field="eval_fraction")
    base_model, policy = target.base_model, target.current_adapter
    reward_check(project=project, pair_policy=pair_policy, reward_model=reward_model, base_model_files=base_model.files)
    settings = Decoding.from_input({"temperature": 1.0, **(decoding or {}), "candidates": candidates_per_prompt})
    config = training_services.job_config_from_input(kind="dpo", preset=dpo_preset, values=dpo_values or {})
    if policy is not None:
        config = training_services.config_continuing(config, policy)
        training_services.parent_check(project=project, kind="dpo", base_model=base_model, config=config, parent=policy)
    number = _next_number(project, target)
    try:
        with transaction.atomic():
            run = evaluation_services.generation_run_start(
                actor=actor, project=project, base_model=base_model, adapter=policy, source=source,
                decoding=settings.as_dict(), limit=limit, upload=upload, fmt=fmt, source_name=source_name,
            )  # fmt: skip
            round_ = Round.objects.create(
                project=project, number=number, target=target, base_model=base_model, policy_adapter=policy,
                candidates_per_prompt=candidates_per_prompt, pairs_per_prompt=pairs_per_prompt,
                pair_policy=pair_policy, reward_model=reward_model, decoding=settings.as_dict(),
                prompt_source=_source_words(source, run.prompt_count, source_name), dpo_config=config.canonical(),
                dpo_preset=dpo_preset, min_decided=max(1, int(min_decided)), eval_fraction=float(eval_fraction),
                generation_run=run, created_by=actor,
            )  # fmt: skip
            audit_event_record(
                actor=actor, action="rounds.start", target=round_, project=project,
                payload={
                    "number": number, "target": target.pk, "policy_adapter": policy.pk if policy else None,
                    "policy_sha256": policy.sha256 if policy else None, "generation_run": run.pk,
                    "candidates_per_prompt": candidates_per_prompt, "pairs_per_prompt": pairs_per_prompt,
                    "pair_policy": pair_policy, "reward_model": reward_model.pk if reward_model else None,
                    "dpo_config_hash": config.hash,
                },
            )  # fmt: skip
    except IntegrityError:
        raise DomainError("Another round of this project started at the same moment.", status=409) from None
    return round_


def reward_check(
    *, project: Project, pair_policy: str, reward_model: RewardModel | None, base_model_files: list[dict[str, Any]]
) -> None:
    """Refuse a pair policy without the reward model it needs, a reward model of another project, and one built
    on another tokenizer than the policy's base model (its scores of this text would mean nothing)."""
    if reward_model is None:
        if pair_policy in POLICIES_NEEDING_SCORES:
            raise DomainError(
                "This pair policy ranks candidates by reward: choose a reward model.", field="reward_model"
            )
        return
    if reward_model.project_id != project.pk:
        raise DomainError("No such reward model in this project.", field="reward_model", status=404)
    if reward_model.tokenizer_hash != tokenizer_hash(base_model_files):
        raise DomainError(
            f"The reward model {reward_model} was built on another tokenizer ({reward_model.base_model}) than the "
            "policy's base model: it cannot score these answers.",
            field="reward_model",
        )


def _next_number(project: Project, target: DeploymentTarget) -> int:
    """Rounds count policies: with no round yet, a target that already serves an adapter is in round 1's place."""
    latest = Round.objects.filter(project=project).aggregate(n=Max("number"))["n"]
    if latest is None:
        return 2 if target.current_adapter_id else 1
    return int(latest) + 1


def _source_words(source: str, count: int, source_name: str) -> str:
    where = {
        PromptSource.UPLOAD: f"the uploaded file {source_name}".strip(),
        PromptSource.PROJECT_ITEMS: "the project's imported items",
        PromptSource.RELEASE_EVAL: "a release's held-out split",
    }.get(PromptSource(source), source)
    return f"{count} prompts from {where}"[:200]
