"""Rounds: the alignment loop on a project, one round at a time.

A ``Round`` walks generate → (score) → pair → judge → release → DPO → evaluate → promote, holding each step's
row (generation run, scoring run, release, training job, adapter, evaluation, promotion request). The pairs
the experts are shown are ``RoundPair`` rows: which two candidates of which prompt, their reward scores and
the pair policy that chose them, and the comparison item they became."""

from django.db import models
from django.utils import timezone

from accounts.models import Project, User
from annotation.models import Item
from evaluation.models import (
    Candidate,
    DeploymentTarget,
    Evaluation,
    GenerationPrompt,
    GenerationRun,
    PromotionRequest,
    ScoringRun,
)
from releases.models import Release
from training.models import Adapter, BaseModel, RewardModel, TrainingJob


class PairPolicy(models.TextChoices):
    RANDOM = "random", "Random pairs"
    LEAST_SURE = "least_sure", "Where the reward model is least sure (smallest margin)"
    BEST_VS_WORST = "best_vs_worst", "Best versus worst by reward"


class RoundState(models.TextChoices):
    GENERATING = "generating", "Generating candidates"
    SCORING = "scoring", "Scoring candidates"
    JUDGING = "judging", "Experts judging"
    RELEASING = "releasing", "Building the release"
    TRAINING = "training", "Training (DPO)"
    EVALUATING = "evaluating", "Blind evaluation"
    PROMOTING = "promoting", "Waiting for promotion"
    PROMOTED = "promoted", "Promoted"
    NOT_PROMOTED = "not_promoted", "Ended without promotion"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


POLICIES_NEEDING_SCORES = (PairPolicy.LEAST_SURE, PairPolicy.BEST_VS_WORST)
ENDED_STATES = (RoundState.PROMOTED, RoundState.NOT_PROMOTED, RoundState.FAILED, RoundState.CANCELLED)


class Round(models.Model):
    """Round ``number`` of a project's loop on a deployment target. Its policy is what the target served when
    the round started (``policy_adapter``; None: the base model alone, round 1)."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="rounds")
    number = models.PositiveIntegerField()
    target = models.ForeignKey(DeploymentTarget, on_delete=models.PROTECT, related_name="rounds")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    policy_adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=16, choices=RoundState.choices, default=RoundState.GENERATING)
    failure_reason = models.TextField(blank=True)
    # How the round is run, fixed at its start
    candidates_per_prompt = models.PositiveSmallIntegerField()
    pairs_per_prompt = models.PositiveSmallIntegerField(default=1)
    pair_policy = models.CharField(max_length=16, choices=PairPolicy.choices)
    reward_model = models.ForeignKey(RewardModel, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    decoding = models.JSONField()
    prompt_source = models.CharField(max_length=200)  # where the new prompts came from, in words
    dpo_config = models.JSONField()  # canonical (training.config), validated at the start
    dpo_preset = models.CharField(max_length=32, blank=True)
    min_decided = models.PositiveIntegerField(default=1)  # decided comparisons before the release may be built
    eval_fraction = models.FloatField(default=0.2)  # of the round's prompts held out: its evaluation's prompts
    # What each step made
    generation_run = models.ForeignKey(GenerationRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    scoring_run = models.ForeignKey(ScoringRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    training_job = models.ForeignKey(TrainingJob, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    evaluation = models.ForeignKey(Evaluation, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    promotion = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    comparisons = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=dict, blank=True)  # win rate against the policy, decided comparisons, ...
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="one_round_per_number"),
            # One round at a time per project: the next starts from what the last one promoted.
            models.UniqueConstraint(
                fields=["project"],
                condition=~models.Q(state__in=["promoted", "not_promoted", "failed", "cancelled"]),
                name="one_open_round_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"round {self.number}"

    @property
    def is_open(self) -> bool:
        return self.state not in ENDED_STATES

    @property
    def tag(self) -> str:
        """The tag its comparison items carry, which its release's recipe selects."""
        return f"round-{self.number}"


class RoundPair(models.Model):
    """Two candidates of one prompt that the pair policy chose to show the experts, with their reward scores
    (None without a reward model), and the comparison item they were imported as."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="pairs")
    prompt = models.ForeignKey(GenerationPrompt, on_delete=models.PROTECT, related_name="+")
    first = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    second = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    first_score = models.FloatField(null=True, blank=True)
    second_score = models.FloatField(null=True, blank=True)
    policy = models.CharField(max_length=16, choices=PairPolicy.choices)
    item = models.ForeignKey(Item, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["round", "id"]
        constraints = [models.UniqueConstraint(fields=["round", "first", "second"], name="one_round_pair")]

    def __str__(self) -> str:
        return f"pair {self.first_id}/{self.second_id} of {self.round}"

    @property
    def margin(self) -> float | None:
        if self.first_score is None or self.second_score is None:
            return None
        return abs(self.first_score - self.second_score)
