"""Governance: erasures of a data subject's text with the taint they leave on what was built from it, and
per-project retention of what is kept only for a while.

An ``Erasure`` never holds the erased text: only an HMAC of the search term (site secret and a salt of its own),
how many matches it replaced where, and the files it rewrote with their hashes before and after. ``Taint`` rows
name what was built from erased text and must be rebuilt: releases, the training jobs and adapters made from
them, evaluations that judged them and deployment targets serving them."""

from django.db import models
from django.utils import timezone

from accounts.models import Project, User


class MatchMode(models.TextChoices):
    EXACT = "exact", "Exact text"
    PATTERN = "pattern", "Regular expression (PostgreSQL syntax)"


class ErasureState(models.TextChoices):
    DONE = "done", "Done"
    FILES_FAILED = "files_failed", "Database erased; a file could not be rewritten"


class Erasure(models.Model):
    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    mode = models.CharField(max_length=8, choices=MatchMode.choices)
    term_salt = models.CharField(max_length=32)
    term_hmac = models.CharField(max_length=64)  # HMAC-SHA256(site secret, salt + term): never the term itself
    request_key = models.CharField(max_length=64, unique=True)  # the form's key: a resend returns this row
    projects = models.ManyToManyField(Project, related_name="+")
    state = models.CharField(max_length=16, choices=ErasureState.choices, default=ErasureState.DONE)
    failure = models.TextField(blank=True)  # which file could not be rewritten, and why (no matched text)
    database_matches = models.PositiveIntegerField(default=0)
    file_matches = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict)  # {"annotation.item.messages": 3, ...}
    items = models.JSONField(default=list)  # ids of the items taken out of the queue and of later releases
    files = models.JSONField(default=list)  # [{"name", "matches", "sha256_before", "sha256_after"}]
    report = models.JSONField(default=dict)  # what must be rebuilt: {"releases": [...], "adapters": [...], ...}
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"erasure #{self.pk}"

    @property
    def matches(self) -> int:
        return self.database_matches + self.file_matches


class TaintKind(models.TextChoices):
    RELEASE = "release", "Release"
    TRAINING_JOB = "training_job", "Training job"
    ADAPTER = "adapter", "Adapter"
    EVALUATION = "evaluation", "Evaluation"
    DEPLOYMENT_TARGET = "deployment_target", "Deployment target"


class Taint(models.Model):
    """One object built from erased text. ``rebuilt_as`` is the release made without the erased items."""

    erasure = models.ForeignKey(Erasure, on_delete=models.PROTECT, related_name="taints")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=24, choices=TaintKind.choices)
    object_id = models.BigIntegerField()
    label = models.CharField(max_length=300)
    why = models.CharField(max_length=300)
    rebuilt_as = models.ForeignKey(
        "releases.Release", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["erasure", "kind", "object_id"]
        constraints = [models.UniqueConstraint(fields=["erasure", "kind", "object_id"], name="one_taint_per_object")]
        indexes = [models.Index(fields=["kind", "object_id"], name="taint_object")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.object_id} tainted by erasure #{self.erasure_id}"


class RetentionPolicy(models.Model):
    """How long a project keeps what is kept only for a while; None: kept until deleted by hand."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="retention")
    import_upload_days = models.PositiveIntegerField(null=True, blank=True, default=30)
    failed_job_days = models.PositiveIntegerField(null=True, blank=True, default=30)
    orphaned_draft_days = models.PositiveIntegerField(null=True, blank=True, default=90)
    updated_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)
    last_swept_at = models.DateTimeField(null=True, blank=True)
    last_sweep = models.JSONField(default=dict, blank=True)  # counts of what the last sweep deleted

    def __str__(self) -> str:
        return f"retention of {self.project}"
