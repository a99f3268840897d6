"""Evaluation: what happens to an adapter after its training job.

- A ``GenerationRun`` answers a fixed list of prompts (``GenerationPrompt``) with a *policy*, a registered base
  model with or without an adapter, on the gpu queue; every answer (``Candidate``) has passed the PII scrubber
  before anyone can read it, and carries its provenance (the run's model hash, adapter sha256, decoding
  settings and code version; its own seed, token counts and time).
- An ``Evaluation`` sets two or more systems (``EvaluationSystem``: the adapter under evaluation first) against
  each other on held-out prompts: one generation run per system, then blind comparisons in a project of its
  own (``judging_project``) that the preference pages serve like any other.
- A ``DeploymentTarget`` names what a serving stack in the perimeter pulls; its ``Deployment`` rows are its
  history. A ``PromotionRequest`` (a promotion or a rollback) changes it once enough ``PromotionApproval`` rows
  of other people are in.

Inputs never change after creation: settings that made an output are copied onto its row."""

from django.db import models
from django.utils import timezone

from accounts.models import Project, User
from releases.models import Release
from training.models import ACTIVE_STATES, Adapter, BaseModel, JobState


class PromptSource(models.TextChoices):
    RELEASE_EVAL = "release_eval", "A release's held-out split"
    PROJECT_ITEMS = "project_items", "A project's imported items"
    UPLOAD = "upload", "An uploaded prompt file"


class GenerationRun(models.Model):
    """One policy answering a fixed list of prompts. States as a training job's (``JobState``)."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="generation_runs")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="generation_runs")
    adapter = models.ForeignKey(
        Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="generation_runs"
    )
    # Copied when the run is defined, so the provenance of its outputs survives anything done to the rows above.
    base_model_hash = models.CharField(max_length=64)
    adapter_sha256 = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=16, choices=PromptSource.choices)
    release = models.ForeignKey(Release, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    source_name = models.CharField(max_length=255, blank=True)  # the uploaded file's name
    # {"candidates": n, "temperature", "top_p", "max_new_tokens", "seed", "batch_size"}
    decoding = models.JSONField()
    evaluation = models.ForeignKey(
        "Evaluation", on_delete=models.CASCADE, null=True, blank=True, related_name="generation_runs"
    )
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    phase = models.CharField(max_length=100, blank=True)
    failure_reason = models.TextField(blank=True)
    prompt_count = models.PositiveIntegerField(default=0)
    prompts_done = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    generation_seconds = models.FloatField(default=0.0)  # time inside generate, summed over batches
    scrub_counts = models.JSONField(default=dict, blank=True)  # {"EMAIL": 2, ...} over the outputs
    code_version = models.CharField(max_length=64, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    worker = models.CharField(max_length=200, blank=True)
    child_pid = models.PositiveIntegerField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="generation_run_state_beat")]

    def __str__(self) -> str:
        return f"generation run #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def work_name(self) -> str:
        return f"generation-{self.pk}"

    @property
    def policy_label(self) -> str:
        return f"{self.base_model} + {self.adapter}" if self.adapter_id else f"{self.base_model} (no adapter)"

    @property
    def scrubbed_values(self) -> int:
        return sum(int(count) for count in (self.scrub_counts or {}).values())

    @property
    def tokens_per_second(self) -> float | None:
        return self.completion_tokens / self.generation_seconds if self.generation_seconds else None

    @property
    def progress_percent(self) -> int:
        if not self.prompt_count:
            return 100 if self.state == JobState.SUCCEEDED else 0
        return min(100, round(100 * self.prompts_done / self.prompt_count))


class GenerationPrompt(models.Model):
    """One prompt of a run, as it was when the run was defined (already scrubbed: it came through an import or
    the same scrubber). ``digest`` is of its normalised text (``releases.splits``), for the training-split check."""

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="prompts")
    index = models.PositiveIntegerField()
    messages = models.JSONField()  # [{"role", "content"}]: the conversation up to the answer to generate
    metadata = models.JSONField(default=dict, blank=True)  # topic, channel, ... (from the item or the file)
    external_id = models.CharField(max_length=200, blank=True)
    item = models.ForeignKey("annotation.Item", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    digest = models.CharField(max_length=32)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="one_generation_prompt_per_index")]

    def __str__(self) -> str:
        return f"prompt {self.index} of run #{self.run_id}"


class Candidate(models.Model):
    """One generated answer, scrubbed. Its provenance is its own seed, token counts and time, with the run's
    model hash, adapter sha256, decoding settings and code version."""

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="candidates")
    prompt = models.ForeignKey(GenerationPrompt, on_delete=models.CASCADE, related_name="candidates")
    sample = models.PositiveSmallIntegerField()  # 0 .. candidates-1 for the prompt
    text = models.TextField()
    seed = models.BigIntegerField()
    prompt_tokens = models.PositiveIntegerField()
    completion_tokens = models.PositiveIntegerField()
    seconds = models.FloatField()  # this answer's share of its batch's generate time
    finish_reason = models.CharField(max_length=16)  # "stop" (end of sequence) or "length"
    scrub_counts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "prompt", "sample"]
        constraints = [models.UniqueConstraint(fields=["prompt", "sample"], name="one_candidate_per_sample")]

    def __str__(self) -> str:
        return f"candidate {self.sample} of {self.prompt}"


class EvaluationState(models.TextChoices):
    GENERATING = "generating", "Generating answers"
    JUDGING = "judging", "Being judged"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Evaluation(models.Model):
    """Blind side-by-side evaluation of an adapter (the first system) against one or more others, on held-out
    prompts none of them was trained on. ``results`` is the figures frozen when it finished: the promotion gate
    reads them."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="evaluations")
    judging_project = models.OneToOneField(
        Project, on_delete=models.PROTECT, null=True, blank=True, related_name="judged_evaluation"
    )
    name = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=PromptSource.choices, default=PromptSource.RELEASE_EVAL)
    release = models.ForeignKey(Release, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    decoding = models.JSONField()
    deployment_target = models.ForeignKey(
        "DeploymentTarget", on_delete=models.PROTECT, null=True, blank=True, related_name="evaluations"
    )
    prompt_count = models.PositiveIntegerField(default=0)
    # prompts left out of the judging because two systems gave the same answer (nothing to tell apart)
    identical_answers = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=EvaluationState.choices, default=EvaluationState.GENERATING)
    failure_reason = models.TextField(blank=True)
    results = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class EvaluationSystem(models.Model):
    """One side of an evaluation. ``position`` 0 is the adapter under evaluation; the label is what results
    show (never an annotator: their pages hide every model name)."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="systems")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=300)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    run = models.OneToOneField(
        GenerationRun, on_delete=models.PROTECT, null=True, blank=True, related_name="evaluation_system"
    )

    class Meta:
        ordering = ["evaluation", "position"]
        constraints = [
            models.UniqueConstraint(fields=["evaluation", "position"], name="one_evaluation_system_per_position")
        ]

    def __str__(self) -> str:
        return self.label


class DeploymentTarget(models.Model):
    """Where a project's model is served, by name (``retail-banking-assistant``). ``current_adapter`` None means
    the base model alone. The gate: a promotion needs a finished evaluation against the current model whose win
    rate's lower bound reaches ``min_win_rate_lower``, and held-out eval loss at most ``max_metric_regression``
    (a fraction) worse than the current adapter's."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="deployment_targets")
    name = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    current_adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    min_win_rate_lower = models.FloatField(default=0.5)
    max_metric_regression = models.FloatField(default=0.02)
    approvals_required = models.PositiveSmallIntegerField(default=2)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="one_deployment_target_name")]

    def __str__(self) -> str:
        return self.name


class RequestKind(models.TextChoices):
    PROMOTION = "promotion", "Promotion"
    ROLLBACK = "rollback", "Rollback"


class RequestState(models.TextChoices):
    PENDING = "pending", "Waiting for approvals"
    DONE = "done", "Carried out"
    REFUSED = "refused", "Refused"
    WITHDRAWN = "withdrawn", "Withdrawn"


class PromotionRequest(models.Model):
    """A request to make ``adapter`` (None: the base model alone) the target's current model. A promotion carries
    the gate as it was checked (``gate``); a rollback carries its reason."""

    target = models.ForeignKey(DeploymentTarget, on_delete=models.PROTECT, related_name="requests")
    kind = models.CharField(max_length=16, choices=RequestKind.choices)
    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    evaluation = models.ForeignKey(Evaluation, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    replaces_adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reason = models.TextField(blank=True)
    gate = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=RequestState.choices, default=RequestState.PENDING)
    decision_note = models.TextField(blank=True)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            # One open request per target at a time: two could each pass the gate against the same current model.
            models.UniqueConstraint(
                fields=["target"], condition=models.Q(state="pending"), name="one_pending_request_per_target"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display().lower()} request #{self.pk} on {self.target}"


class PromotionApproval(models.Model):
    request = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["request", "created_at"]
        constraints = [models.UniqueConstraint(fields=["request", "approver"], name="one_approval_per_person")]

    def __str__(self) -> str:
        return f"approval of request #{self.request_id} by {self.approver}"


class Deployment(models.Model):
    """One change of a target's current model: its history, newest first. ``request`` is None for the first
    entry, written when the target is created."""

    target = models.ForeignKey(DeploymentTarget, on_delete=models.PROTECT, related_name="history")
    kind = models.CharField(max_length=16)  # "created", "promotion", "rollback"
    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="deployments")
    previous_adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    request = models.OneToOneField(
        PromotionRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="deployment"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} on {self.target} at {self.created_at:%Y-%m-%d %H:%M}"


class ScoringScope(models.TextChoices):
    GENERATION_RUN = "generation_run", "A generation run's candidates"
    COMPARISONS = "comparisons", "A project's comparison candidates"


class ScoringRun(models.Model):
    """A reward model scoring answers on the gpu queue: every candidate of a generation run, or every candidate
    of a project's comparison items. Supervised like a generation run (states as a training job's); each score
    is a ``RewardScore``. Scores are for admins and the pair policy: never shown to annotators."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="scoring_runs")
    reward_model = models.ForeignKey("training.RewardModel", on_delete=models.PROTECT, related_name="scoring_runs")
    reward_model_sha256 = models.CharField(max_length=64)  # copied when defined, checked before scoring
    scope = models.CharField(max_length=16, choices=ScoringScope.choices)
    generation_run = models.ForeignKey(
        GenerationRun, on_delete=models.PROTECT, null=True, blank=True, related_name="scoring_runs"
    )
    batch_size = models.PositiveSmallIntegerField(default=8)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    phase = models.CharField(max_length=100, blank=True)
    failure_reason = models.TextField(blank=True)
    total = models.PositiveIntegerField(default=0)  # answers to score
    done = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0.0)  # time inside the forward passes
    environment = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    worker = models.CharField(max_length=200, blank=True)
    child_pid = models.PositiveIntegerField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="scoring_run_state_beat")]

    def __str__(self) -> str:
        return f"scoring run #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def work_name(self) -> str:
        return f"scoring-{self.pk}"

    @property
    def candidates_per_second(self) -> float | None:
        return self.done / self.seconds if self.seconds else None


class RewardScore(models.Model):
    """One answer's reward under one reward model: a generation ``candidate``, or candidate ``candidate_index``
    of a comparison ``item``. Stored once per reward model and answer."""

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="scores")
    reward_model = models.ForeignKey("training.RewardModel", on_delete=models.PROTECT, related_name="scores")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, null=True, blank=True, related_name="scores")
    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    candidate_index = models.PositiveSmallIntegerField(null=True, blank=True)
    score = models.FloatField()

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reward_model", "candidate"],
                condition=models.Q(candidate__isnull=False),
                name="one_score_per_candidate",
            ),
            models.UniqueConstraint(
                fields=["reward_model", "item", "candidate_index"],
                condition=models.Q(item__isnull=False),
                name="one_score_per_item_candidate",
            ),
        ]

    def __str__(self) -> str:
        return f"score {self.score:.4f} by {self.reward_model_id}"
