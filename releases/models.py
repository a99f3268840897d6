"""Dataset releases: immutable, content-hashed SFT and preference sets built from approved annotations and
judgements. A built release never changes: its files are hashed into ``manifest.json`` and the release hash
is the sha256 of that manifest. On PostgreSQL triggers refuse changes to a built release, its files and its
item rows (migration 0002); the services and the admin refuse them everywhere."""

from django.db import models
from django.utils import timezone

from accounts.models import Project, User
from annotation.models import Item


class ReleaseKind(models.TextChoices):
    SFT = "sft", "SFT (ideal responses)"
    PREFERENCE = "preference", "Preference pairs"


class ReleaseState(models.TextChoices):
    QUEUED = "queued", "Queued"
    BUILDING = "building", "Building"
    BUILT = "built", "Built"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted (tombstone)"


FROZEN_STATES = (ReleaseState.BUILT, ReleaseState.DELETED)


class Release(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="releases")
    kind = models.CharField(max_length=16, choices=ReleaseKind.choices)
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    recipe = models.JSONField()  # canonical: see releases.recipe.Recipe
    assumptions = models.TextField(blank=True)  # datasheet (d), written by the data lead before the build
    state = models.CharField(max_length=16, choices=ReleaseState.choices, default=ReleaseState.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    progress_note = models.CharField(max_length=200, blank=True)
    failure_reason = models.TextField(blank=True)
    leak_report = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    hash = models.CharField(max_length=64, blank=True)  # sha256 of the canonical manifest
    datasheet = models.JSONField(null=True, blank=True)
    build_stats = models.JSONField(default=dict, blank=True)  # timings: not part of the hash
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    built_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["project", "name", "version"], name="one_release_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def version_str(self) -> str:
        return str(self.version)

    @property
    def eval_rows(self) -> int:
        """Rows in the held-out split of a built release (0 before it is built)."""
        counts = (self.manifest or {}).get("counts") or {}
        return int((counts.get("rows") or {}).get("eval", 0))

    @property
    def storage_prefix(self) -> str:
        return f"releases/{self.project_id}/{self.pk}"


class ReleaseFile(models.Model):
    """One artifact of a built release. ``path`` is relative to the release (``trl_preference/train.jsonl``)."""

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="files")
    path = models.CharField(max_length=300)
    fmt = models.CharField(max_length=32)
    split = models.CharField(max_length=16, blank=True)  # train / eval; blank for manifest and datasheet
    rows = models.PositiveBigIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["release", "path"], name="one_release_file_path")]

    def __str__(self) -> str:
        return self.path

    @property
    def storage_name(self) -> str:
        return f"{self.release.storage_prefix}/{self.path}"


class ReleaseItem(models.Model):
    """Which split an item went to in a release, and a fingerprint of what it contributed: the rows of
    sticky evaluation splits, leakage checks against earlier releases and diffs between releases."""

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="items")
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="+")
    split = models.CharField(max_length=8)
    group_hash = models.CharField(max_length=32)  # of the normalised prompt: a group never straddles splits
    fingerprint = models.CharField(max_length=32)  # of the rows the item produced
    outcome = models.TextField(blank=True)  # preference: "criterion:chosen>rejected;..." for flips
    source = models.CharField(max_length=16, default="annotated")  # or "mixin"
    # In eval because it leaked (moved there by the leak check of this release or an earlier one): a rebuild
    # checks it again as a training item would be, so it counts the same moves and gives the same hash.
    moved = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["release", "item"], name="one_row_per_release_item")]
        indexes = [models.Index(fields=["split", "release"], name="release_item_split")]

    def __str__(self) -> str:
        return f"item #{self.item_id} in {self.split} of release #{self.release_id}"


class PromptEmbedding(models.Model):
    """An item's prompt embedded by the sentence model whose content hash is ``model_hash`` (one row an item:
    a new model or a changed prompt replaces it). Stored as int8 with one scale a vector (``dim`` bytes and a
    float, about a quarter of float32): component i is ``vector[i] * scale``; ``releases.embeddings`` encodes
    and decodes. ``content_hash`` is the item's when it was embedded, so an edited prompt (a PII redaction) is
    embedded again. Derived data, computed on a gpu worker after each import."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="+")
    model_hash = models.CharField(max_length=64)
    content_hash = models.CharField(max_length=64)
    dim = models.PositiveSmallIntegerField()
    scale = models.FloatField()
    vector = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["model_hash"], name="prompt_embedding_model")]

    def __str__(self) -> str:
        return f"embedding of item #{self.item_id}"


class EvalHealthSettings(models.Model):
    """A project's thresholds for eval-set drift and coverage (one row a project; without one, the defaults).
    A report flags a check that crosses its threshold; the drift page, the badges and the next datasheet say so."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="+")
    psi_max = models.FloatField(default=0.2)  # population stability index of a metadata key's shares
    chi2_p_min = models.FloatField(default=0.01)  # a key (and prompt length) also needs a p-value below this
    ks_max = models.FloatField(default=0.2)  # two-sample KS statistic of prompt lengths in tokens
    centroid_max = models.FloatField(default=0.05)  # cosine distance of the mean prompt embeddings
    mmd_p_min = models.FloatField(default=0.01)  # permutation p-value of the embeddings' MMD
    window_days = models.PositiveSmallIntegerField(default=30)  # the recent imports compared with the eval set
    min_eval_per_stratum = models.PositiveIntegerField(default=20)  # fewer eval items in a stratum: a coverage gap
    updated_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    THRESHOLDS = ("psi_max", "chi2_p_min", "ks_max", "centroid_max", "mmd_p_min", "window_days", "min_eval_per_stratum")

    def __str__(self) -> str:
        return f"eval-set health thresholds of project #{self.project_id}"

    def thresholds(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.THRESHOLDS}


class DriftState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Computing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class DriftReport(models.Model):
    """The eval split of a release (``release`` null: the project's current eval set, every frozen release's
    eval items) against the items imported between ``window_start`` and ``window_end``; computed by the task
    ``releases.drift_report_compute`` (``releases.drift``), read by the drift page. ``result`` holds the
    figures, ``flagged`` the checks that crossed the ``thresholds`` in force when it was computed."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    state = models.CharField(max_length=16, choices=DriftState.choices, default=DriftState.QUEUED)
    failure_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    computed_at = models.DateTimeField(null=True, blank=True)
    model_hash = models.CharField(max_length=64, blank=True)
    thresholds = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    flagged = models.JSONField(default=list, blank=True)  # ["topic", "embedding centroid", ...]
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "state", "-id"], name="drift_report_latest")]

    def __str__(self) -> str:
        return f"drift report #{self.pk}"
