"""Training: the base-model registry, LoRA jobs (SFT and DPO) with their logged metrics and log lines, the
GPU workers' capabilities, and adapters with their lineage.

A job's inputs (release, base model, canonical config) never change after it is defined; "run again" makes a
new job. An adapter is bound to the hashes of everything that made it, copied onto the row so the lineage
survives even if a release becomes a tombstone."""

from django.db import models
from django.utils import timezone

from accounts.models import Project, User
from releases.models import Release


class BaseModelState(models.TextChoices):
    VALIDATING = "validating", "Validating"
    READY = "ready", "Ready"
    INVALID = "invalid", "Invalid"


class BaseModel(models.Model):
    """A causal LM in a local directory that the GPU workers can read (a shared models volume). Site-wide:
    site staff register it, project admins train on it. Its hash covers the weight and tokenizer files."""

    name = models.CharField(max_length=100, unique=True)
    path = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=BaseModelState.choices, default=BaseModelState.VALIDATING)
    failure_reason = models.TextField(blank=True)
    architecture = models.CharField(max_length=100, blank=True)
    model_type = models.CharField(max_length=50, blank=True)
    parameter_count = models.PositiveBigIntegerField(null=True, blank=True)
    dtype = models.CharField(max_length=20, blank=True)
    linear_modules = models.JSONField(default=list, blank=True)  # names LoRA can target (q_proj, ...)
    content_hash = models.CharField(max_length=64, blank=True)
    files = models.JSONField(default=list, blank=True)  # [{path, size_bytes, sha256}], sorted by path
    registered_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    registered_at = models.DateTimeField(default=timezone.now)
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def parameters_label(self) -> str:
        return f"{self.parameter_count:,}" if self.parameter_count is not None else "—"


class JobKind(models.TextChoices):
    SFT = "sft", "SFT (supervised fine-tuning)"
    DPO = "dpo", "DPO (preference optimisation)"
    REWARD = "reward", "Reward model (pairwise, on preference data)"
    KTO = "kto", "KTO (desirable and undesirable answers)"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
RELEASE_KIND_FOR_JOB: dict[str, str] = {
    JobKind.SFT: "sft",
    JobKind.DPO: "preference",
    JobKind.REWARD: "preference",
    JobKind.KTO: "preference",
}
# The job a release trains unless told otherwise (a preference release also trains a reward model, on request).
JOB_KIND_FOR_RELEASE: dict[str, str] = {"sft": JobKind.SFT, "preference": JobKind.DPO}


class TrainingJob(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="training_jobs")
    kind = models.CharField(max_length=8, choices=JobKind.choices)
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="training_jobs")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="jobs")
    config = models.JSONField()  # canonical: see training.config.JobConfig
    config_hash = models.CharField(max_length=64)
    preset = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    phase = models.CharField(max_length=100, blank=True)  # what the job does right now, for the page
    failure_reason = models.TextField(blank=True)
    evaluation = models.JSONField(default=dict, blank=True)  # {"before": {...}, "after": {...}}
    environment = models.JSONField(default=dict, blank=True)  # library versions, hardware, network record
    rerun_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="reruns")
    # DPO only: continue training this adapter's LoRA weights (a round's policy) instead of a new adapter.
    parent_adapter = models.ForeignKey(
        "Adapter", on_delete=models.PROTECT, null=True, blank=True, related_name="continued_by_jobs"
    )
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
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="training_job_state_beat")]

    def __str__(self) -> str:
        return f"{self.get_kind_display().split(' ')[0]} job #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def progress_percent(self) -> int:
        if not self.total_steps:
            return 100 if self.state == JobState.SUCCEEDED else 0
        return min(100, round(100 * self.step / self.total_steps))

    @property
    def work_name(self) -> str:
        return f"job-{self.pk}"


class JobMetric(models.Model):
    """One logged step of a job: ``values`` holds what the trainer logged (loss, learning_rate, grad_norm;
    for DPO rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins; eval_* for evaluations)."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    phase = models.CharField(max_length=8, default="train")  # train / eval
    epoch = models.FloatField(null=True, blank=True)
    values = models.JSONField()
    logged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "id"]

    def __str__(self) -> str:
        return f"{self.phase} step {self.step} of job #{self.job_id}"


class JobLogLine(models.Model):
    """A line the training process printed (stdout and stderr, in order), kept so a failed job shows why."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    line = models.TextField()
    logged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="one_log_line_per_seq")]

    def __str__(self) -> str:
        return f"line {self.seq} of job #{self.job_id}"


class TrainingWorker(models.Model):
    """What a worker on the ``gpu`` queue reported about itself when it started and on every job: the
    devices and libraries that decide which configs it can run (QLoRA needs a GPU and bitsandbytes)."""

    hostname = models.CharField(max_length=200, unique=True)
    devices = models.JSONField(default=list, blank=True)  # [{"name", "memory_bytes"}] of CUDA devices
    bitsandbytes = models.BooleanField(default=False)
    versions = models.JSONField(default=dict, blank=True)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname


class Trained(models.Model):
    """What a finished job leaves in the artifact store, with everything that made it (an adapter, a reward
    model): copied onto the row so the lineage holds after the release becomes a tombstone."""

    name = models.CharField(max_length=200)
    storage_prefix = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64)  # of adapter_model.safetensors
    size_bytes = models.PositiveBigIntegerField()
    files = models.JSONField(default=list)  # [{path, size_bytes, sha256}]
    release_hash = models.CharField(max_length=64)
    base_model_hash = models.CharField(max_length=64)
    config = models.JSONField()
    config_hash = models.CharField(max_length=64)
    seed = models.BigIntegerField()
    library_versions = models.JSONField(default=dict)
    code_version = models.CharField(max_length=64)
    hardware = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)  # evaluation before and after, final training figures
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Adapter(Trained):
    """A trained LoRA adapter of a causal LM (SFT or DPO) in the artifact store and everything that made it.
    ``parent`` is the adapter whose weights a continued DPO job started from (a round's policy)."""

    job = models.OneToOneField(TrainingJob, on_delete=models.PROTECT, related_name="adapter")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="adapters")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="adapters")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="adapters")
    started_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")
    parent_sha256 = models.CharField(max_length=64, blank=True)

    class Meta(Trained.Meta):
        pass


class RewardModel(Trained):
    """A reward model: a LoRA adapter and a one-output score head on the base model (sequence classification),
    trained on a preference release with TRL's RewardTrainer. It scores answers; it never generates, so it is
    never a policy. ``tokenizer_hash`` covers the base model's tokenizer files: scoring text is only meaningful
    with the tokenizer it was trained with."""

    job = models.OneToOneField(TrainingJob, on_delete=models.PROTECT, related_name="reward_model")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="reward_models")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="reward_models")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="reward_models")
    started_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    tokenizer_hash = models.CharField(max_length=64)

    class Meta(Trained.Meta):
        pass


class MergedState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Merging"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class MergedModel(models.Model):
    """An adapter merged into its base model (``merge_and_unload``) for serving targets that take only full
    models: safetensors weights, the tokenizer and a model card naming the release, base model, config and adapter
    hashes. One per adapter: asking again while it is queued or ready answers with this row; after a failure the
    same row is queued anew. ``files`` holds every file's sha256, the card's too; ``sha256`` is the weights'."""

    adapter = models.OneToOneField(Adapter, on_delete=models.PROTECT, related_name="merged")
    state = models.CharField(max_length=16, choices=MergedState.choices, default=MergedState.QUEUED)
    failure_reason = models.TextField(blank=True)
    storage_prefix = models.CharField(max_length=300, blank=True)
    files = models.JSONField(default=list, blank=True)  # [{path, size_bytes, sha256}]
    sha256 = models.CharField(max_length=64, blank=True)  # of model.safetensors
    size_bytes = models.PositiveBigIntegerField(default=0)
    adapter_sha256 = models.CharField(max_length=64)  # what was merged, as requested
    base_model_hash = models.CharField(max_length=64)
    library_versions = models.JSONField(default=dict, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # the merging worker's, every few seconds

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"merged model of adapter #{self.adapter_id}"

    @property
    def is_active(self) -> bool:
        return self.state in (MergedState.QUEUED, MergedState.RUNNING)


class MlflowState(models.TextChoices):
    QUEUED = "queued", "Queued"
    LOGGED = "logged", "Logged"
    FAILED = "failed", "Failed"


class MlflowRun(models.Model):
    """A training job's run in the organisation's MLflow tracking server (``MLFLOW_TRACKING_URI``), made by a
    default worker after the job ended (``training.tracking``): queued when the job ends, then logged (the run,
    its experiment and the registered model version) or failed with the reason. One per job: logging again finds
    the run by its job tag instead of making a second. ``tracking_uri`` is the server's address without
    credentials, as it was when the run was logged."""

    job = models.OneToOneField(TrainingJob, on_delete=models.CASCADE, related_name="mlflow_run")
    state = models.CharField(max_length=16, choices=MlflowState.choices, default=MlflowState.QUEUED)
    reason = models.TextField(blank=True)
    tracking_uri = models.CharField(max_length=500, blank=True)
    experiment_id = models.CharField(max_length=64, blank=True)
    experiment_name = models.CharField(max_length=500, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=500, blank=True)
    model_version = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"MLflow run of job #{self.job_id}"
