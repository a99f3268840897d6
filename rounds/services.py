"""The use cases of rounds. Every state change is audited (``rounds.*``).

A round on a deployment target: its policy (what the target serves: an adapter, or the base model alone)
answers new prompts with K candidates each → a reward model scores them (when the pair policy needs one) →
the pair policy chooses which pairs the experts rank → they judge in the project's ordinary compare pages →
the round's preference release (its own tagged pairs) → a DPO job that continues the policy's LoRA weights
(reference: the policy, frozen) → a blind evaluation of the new adapter against the target's current model →
a promotion through the target's four-eyes approvals. ``round_advance`` moves a round as far as its rows
allow; it runs when a step's row ends (``core.followups``), every ``ROUNDS_ADVANCE_INTERVAL`` seconds on the
default workers (``enclave.periodic``), and after each person's action. Building the release waits for the
experts: at once when every pair is decided, earlier when an admin asks (at least ``min_decided``)."""

from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_event_record
from annotation.selectors import annotation_settings
from core.errors import DomainError
from evaluation import services as evaluation_services
from evaluation.models import (
    EvaluationState,
    PromptSource,
    RequestKind,
    RequestState,
    ScoringRun,
)
from evaluation.results import head_to_head_against
from releases import services as release_services
from releases.models import ReleaseState
from rounds import pairing
from rounds.models import ENDED_STATES, POLICIES_NEEDING_SCORES, Round, RoundState
from rounds.starting import MAX_CANDIDATES as MAX_CANDIDATES
from rounds.starting import reward_check as reward_check
from rounds.starting import round_start as round_start
from training import services as training_services
from training.config import JobConfig
from training.models import JobState

ENDED_RUN = (JobState.FAILED, JobState.CANCELLED)


# --- Advance -----------------------------------------------------------------------------------------------


def round_advance(*, round_id: int) -> Round:
    """Move an open round on as far as its rows allow (each move audited); a step that cannot be taken fails the
    round with the reason. Safe to run anywhere at any time: it holds the round's row."""
    with transaction.atomic():
        round_ = (
            Round.objects.select_for_update(of=("self",))
            .select_related("project", "target", "created_by")
            .get(pk=round_id)
        )
        for _ in range(len(RoundState.values)):
            if round_.state in ENDED_STATES or not _step(round_):
                break
    return round_


def _step(round_: Round) -> bool:
    """Take the round's next step if its row allows it; returns whether the round moved."""
    try:
        return STEPS[RoundState(round_.state)](round_)
    except DomainError as refused:
        _fail(round_, refused.message)
        return True


def _after_generation(round_: Round) -> bool:
    run = round_.generation_run
    assert run is not None
    if run.state in ENDED_RUN:
        _fail(
            round_, f"Generation run #{run.pk} {run.get_state_display().lower()}: {run.failure_reason or 'no reason'}"
        )
        return True
    if run.state != JobState.SUCCEEDED:
        return False
    if round_.pair_policy in POLICIES_NEEDING_SCORES or round_.reward_model_id:
        assert round_.reward_model is not None
        scoring = evaluation_services.scoring_run_start(
            actor=round_.created_by, project=round_.project, reward_model=round_.reward_model, generation_run=run
        )
        _move(round_, RoundState.SCORING, scoring_run=scoring)
        return True
    return _open_judging(round_)


def _after_scoring(round_: Round) -> bool:
    assert round_.scoring_run_id is not None
    scoring = ScoringRun.objects.get(pk=round_.scoring_run_id)
    if scoring.state in ENDED_RUN:
        _fail(round_, f"Scoring run #{scoring.pk} {scoring.get_state_display().lower()}: {scoring.failure_reason}")
        return True
    return scoring.state == JobState.SUCCEEDED and _open_judging(round_)


def _open_judging(round_: Round) -> bool:
    pairs = pairing.pairs_choose(round_)
    if not pairs:
        raise DomainError(
            "Every prompt's candidates were the same answer: there is nothing to compare. Raise the temperature."
        )
    linked = pairing.comparisons_import(round_, pairs)
    shown = round_.pairs.count()  # without the pairs the project already held
    _move(round_, RoundState.JUDGING, comparisons=shown, payload={"pairs": shown, "items": linked})
    return True


def decided_count(round_: Round) -> tuple[int, int]:
    """How many of the round's comparisons every one of their k annotators judged, and how many there are."""
    pairing.pairs_link(round_)
    k = annotation_settings(round_.project).annotators_per_item
    items = round_.pairs.filter(item__isnull=False).values_list("item_id", flat=True)
    judged = (
        round_.pairs.filter(item_id__in=list(items))
        .annotate(n=Count("item__judgements", filter=Q(item__judgements__is_gold=False)))
        .filter(n__gte=k)
        .count()
    )
    return judged, round_.comparisons


def _after_judging(round_: Round) -> bool:
    decided, total = decided_count(round_)
    return bool(total) and decided >= total and _release_start(round_, actor=None)


def _release_start(round_: Round, actor: User | None) -> bool:
    recipe = {"kind": "preference", "tags": [round_.tag], "eval_fraction": round_.eval_fraction,
              "leakage": "move_to_eval"}  # fmt: skip
    release = release_services.release_create(
        actor=actor or round_.created_by,
        project=round_.project,
        name=f"round-{round_.number}",
        recipe=recipe,
        assumptions=f"The pairs experts judged in round {round_.number} ({round_.get_pair_policy_display().lower()}).",
    )
    _move(round_, RoundState.RELEASING, actor=actor, release=release)
    return True


def _after_release(round_: Round) -> bool:
    release = round_.release
    assert release is not None
    release.refresh_from_db(fields=["state", "failure_reason"])
    if release.state == ReleaseState.FAILED:
        _fail(round_, f"The round's release {release} failed: {release.failure_reason}")
        return True
    if release.state != ReleaseState.BUILT:
        return False
    if not release.eval_rows:
        raise DomainError(
            f"The round's release {release} has no held-out rows (the {round_.eval_fraction:.0%} of its decided "
            "pairs held out by prompt came to none), so a new adapter could not be evaluated "
            "against the target's model: nothing was trained. Pairs the experts split on evenly, or called a tie, "
            "are left out of a release. Start the next round with more prompts or a larger held-out share."
        )
    job = training_services.training_job_start(
        actor=round_.created_by, project=round_.project, kind="dpo", release=release, base_model=round_.base_model,
        config=JobConfig.from_canonical(round_.dpo_config), preset=round_.dpo_preset,
        parent_adapter=round_.policy_adapter,
    )  # fmt: skip
    _move(round_, RoundState.TRAINING, training_job=job)
    return True


def _after_training(round_: Round) -> bool:
    job = round_.training_job
    assert job is not None
    job.refresh_from_db(fields=["state", "failure_reason"])
    if job.state in ENDED_RUN:
        _fail(round_, f"DPO job #{job.pk} {job.get_state_display().lower()}: {job.failure_reason or 'no reason'}")
        return True
    if job.state != JobState.SUCCEEDED:
        return False
    adapter = job.adapter
    round_.adapter = adapter  # recorded first: its lineage names the round even if the evaluation is refused
    round_.save(update_fields=["adapter"])
    evaluation = evaluation_services.evaluation_start(
        actor=round_.created_by, project=round_.project, adapter=adapter,
        against={"kind": "deployment_target", "target": round_.target_id}, source=PromptSource.RELEASE_EVAL,
        release=round_.release, name=f"Round {round_.number}: {adapter.name} vs {round_.target.name}",
    )  # fmt: skip
    _move(round_, RoundState.EVALUATING, adapter=adapter, evaluation=evaluation)
    return True


def _after_evaluation(round_: Round) -> bool:
    evaluation = round_.evaluation
    assert evaluation is not None
    evaluation.refresh_from_db(fields=["state", "failure_reason", "results"])
    if evaluation.state in (EvaluationState.FAILED, EvaluationState.CANCELLED):
        _fail(round_, f"The evaluation {evaluation} did not finish: {evaluation.failure_reason or 'cancelled'}")
        return True
    if evaluation.state != EvaluationState.FINISHED:
        return False
    against = head_to_head_against(evaluation.results or {}) or {}
    results = {key: against.get(key) for key in ("win_rate", "low", "high", "n", "wins", "losses", "ties", "verdict")}
    _move(round_, RoundState.PROMOTING, results={**round_.results, "evaluation": results})
    return True


def _after_promotion(round_: Round) -> bool:
    request = (
        round_.target.requests.filter(kind=RequestKind.PROMOTION, adapter=round_.adapter)
        .order_by("-requested_at", "-id")
        .first()
    )
    if request is None:
        return False
    if round_.promotion_id != request.pk:
        round_.promotion = request
        round_.save(update_fields=["promotion"])
    if request.state != RequestState.DONE:
        return False
    _move(round_, RoundState.PROMOTED, finished=True, payload={"promotion": request.pk})
    return True


STEPS = {
    RoundState.GENERATING: _after_generation,
    RoundState.SCORING: _after_scoring,
    RoundState.JUDGING: _after_judging,
    RoundState.RELEASING: _after_release,
    RoundState.TRAINING: _after_training,
    RoundState.EVALUATING: _after_evaluation,
    RoundState.PROMOTING: _after_promotion,
}


def _move(
    round_: Round,
    state: str,
    *,
    actor: User | None = None,
    finished: bool = False,
    payload: dict[str, Any] | None = None,
    **rows: Any,
) -> None:
    before = round_.state
    round_.state = state
    for name, value in rows.items():
        setattr(round_, name, value)
    fields = ["state", *rows]
    if finished:
        round_.finished_at = timezone.now()
        fields.append("finished_at")
    round_.save(update_fields=fields)
    linked = {name: getattr(value, "pk", value) for name, value in rows.items() if name != "results"}
    audit_event_record(
        actor=actor, action=f"rounds.{state}", target=round_, project=round_.project,
        payload={"number": round_.number, "from": before, **linked, **(payload or {})},
    )  # fmt: skip


def _fail(round_: Round, reason: str) -> None:
    round_.failure_reason = reason[:4000]
    round_.save(update_fields=["failure_reason"])
    _move(round_, RoundState.FAILED, finished=True, payload={"reason": reason[:2000]})


# --- People's actions --------------------------------------------------------------------------------------


def round_release_start(*, actor: User, round_: Round) -> Round:
    """An admin builds the round's release before every pair is decided (at least ``min_decided`` are).
    Raises ``DomainError`` (409) when the round is not judging or too few pairs are decided."""
    with transaction.atomic():
        round_ = Round.objects.select_for_update(of=("self",)).select_related("project", "created_by").get(pk=round_.pk)
        if round_.state != RoundState.JUDGING:
            raise DomainError(
                f"Round {round_.number} is {round_.get_state_display().lower()}, not judging.", status=409
            )
        decided, total = decided_count(round_)
        if decided < round_.min_decided:
            raise DomainError(
                f"{decided} of {total} comparisons are decided; the round needs {round_.min_decided} before its "
                "release is built.",
                status=409,
            )
        _release_start(round_, actor=actor)
    return round_advance(round_id=round_.pk)


def round_end(*, actor: User, round_: Round, reason: str = "") -> Round:
    """End an open round: *ended without promotion* once its adapter exists, *cancelled* before (a running
    generation, scoring or training is asked to stop). The next round may start then. Raises ``DomainError``
    (409) for a round that has already ended."""
    with transaction.atomic():
        round_ = Round.objects.select_for_update(of=("self",)).select_related("project").get(pk=round_.pk)
        if round_.state in ENDED_STATES:
            raise DomainError(f"Round {round_.number} has already ended.", status=409)
        state = RoundState.NOT_PROMOTED if round_.adapter_id else RoundState.CANCELLED
        _stop_running(actor, round_)
        if reason.strip():
            round_.failure_reason = reason.strip()[:4000]
            round_.save(update_fields=["failure_reason"])
        _move(round_, state, actor=actor, finished=True, payload={"reason": reason.strip()[:2000]})
    return round_


def _stop_running(actor: User, round_: Round) -> None:
    run, job = round_.generation_run, round_.training_job
    if run is not None and run.is_active:
        evaluation_services.generation_run_cancel(actor=actor, run=run)
    if round_.scoring_run_id is not None:
        scoring = ScoringRun.objects.get(pk=round_.scoring_run_id)
        if scoring.is_active:
            evaluation_services.scoring_run_cancel(actor=actor, run=scoring)
    if job is not None and job.is_active:
        training_services.training_job_cancel(actor=actor, job=job)


def rounds_advance_open() -> list[int]:
    """Advance every open round (the periodic turn); returns the ids of those that moved."""
    moved = []
    for pk, state in Round.objects.exclude(state__in=ENDED_STATES).values_list("pk", "state"):
        if round_advance(round_id=pk).state != state:
            moved.append(pk)
    return moved
