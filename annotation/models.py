"""SFT annotation: imported items, rubrics, the shared assignment queue, drafts, annotations and reviews."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Project, User


class PiiMode(models.TextChoices):
    REPLACE = "replace", "Replace with typed placeholders"
    REJECT = "reject", "Reject items that contain PII"


class PiiUncertain(models.TextChoices):
    SCRUB = "scrub", "Scrub them like the others"
    KEEP = "keep", "Keep them in the text"


class AnnotationSettings(models.Model):
    """Per-project settings of the annotation workflow (created with defaults on first use)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="annotation")
    annotators_per_item = models.PositiveSmallIntegerField(default=1)
    lease_minutes = models.PositiveSmallIntegerField(default=30)
    pii_mode = models.CharField(max_length=16, choices=PiiMode.choices, default=PiiMode.REPLACE)
    pii_patterns = models.JSONField(default=list, blank=True)  # [[TYPE, regex], ...]
    pii_terms = models.JSONField(default=list, blank=True)  # literal terms, e.g. customer names
    # Values the scrubber is unsure of (e.g. a merely possible phone number without a word saying phone):
    # scrubbed by default; either way each is listed in the import report as "uncertain".
    pii_uncertain = models.CharField(max_length=8, choices=PiiUncertain.choices, default=PiiUncertain.SCRUB)
    # The country whose national phone formats are read without a "+CC" (ISO 3166 code, e.g. "DE").
    pii_phone_region = models.CharField(max_length=2, default="GB")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"annotation settings of {self.project}"


class RubricVersion(models.Model):
    """Guidelines (Markdown) and criteria of a project. Editing a version that annotations use makes a
    new version; every annotation keeps the version it was made under."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rubric_versions")
    version = models.PositiveIntegerField()
    guidelines = models.TextField(blank=True)
    criteria = models.JSONField(default=list)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="one_rubric_version_number")]

    def __str__(self) -> str:
        return f"{self.project} rubric v{self.version}"


class ImportStatus(models.TextChoices):
    MAPPING = "mapping", "Waiting for the data lead's mapping"  # a peer tool's file: whose judgements are whose
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Imported"
    REFUSED = "refused", "Refused (bad lines, nothing imported)"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled before its mapping (nothing imported)"


class ImportBatch(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_batches")
    uploaded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    source_name = models.CharField(max_length=255)
    fmt = models.CharField(max_length=32)
    # "annotation": items for the queue; "mixin": general-purpose conversations that releases may mix into
    # their training split as they are (never shown to annotators).
    purpose = models.CharField(max_length=16, default="annotation")
    csv_mapping = models.JSONField(null=True, blank=True)
    skip_bad_lines = models.BooleanField(default=False)
    # sha256 over the scrubbed content (line and content hash of every record), set when the import has run;
    # the uploaded file's own hash is never kept: it would be a fingerprint of unscrubbed text.
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    stored_path = models.CharField(max_length=500, blank=True)  # kept only while a task processes it
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    lines_read = models.PositiveIntegerField(default=0)
    imported_count = models.PositiveIntegerField(default=0)
    bad_line_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    pii_rejected_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{"line": n, "reason": "..."}], first 1000
    duplicates = models.JSONField(default=list, blank=True)  # [{"line": n, "reason": "..."}], first 1000
    scrub_counts = models.JSONField(default=dict, blank=True)  # {"EMAIL": 3, ...}
    uncertain_count = models.PositiveIntegerField(default=0)
    # [{"line", "type", "turn", "column", "hint", "scrubbed"}], first 1000; never the value: the hint masks it
    uncertain = models.JSONField(default=list, blank=True)
    failure_reason = models.TextField(blank=True)
    # A peer tool's file (Label Studio, Argilla, OpenAssistant): what its first read found (tool, project,
    # fields, annotators with counts), the fields and annotators the data lead mapped, and what came of it.
    peer_scan = models.JSONField(null=True, blank=True)
    field_map = models.JSONField(null=True, blank=True)  # {"prompt", "candidates", "response"}
    annotator_map = models.JSONField(null=True, blank=True)  # {tool's key: {"user": id} or {"new": true}}
    judgement_count = models.PositiveIntegerField(default=0)
    answer_count = models.PositiveIntegerField(default=0)
    dropped_count = models.PositiveIntegerField(default=0)
    dropped = models.JSONField(default=list, blank=True)  # [{"line": n, "reason": "..."}], first 1000
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import #{self.pk} {self.source_name}"


class ImportedAnnotator(models.Model):
    """A person known only to a peer tool, whose imported judgements and answers need an author: an account
    that cannot sign in (inactive, no password), named by pseudonym, made only when a data lead maps that
    person to "a new imported annotator". The same person in a later import of the same tool maps to it
    again."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    tool = models.CharField(max_length=32)
    key = models.CharField(max_length=200)  # the tool's own id of the person (a user id, "consensus")
    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="imported_as")
    first_batch = models.ForeignKey(ImportBatch, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "tool", "key"], name="one_imported_annotator")]

    def __str__(self) -> str:
        return f"{self.user} ({self.tool} {self.key})"


class ItemState(models.TextChoices):
    OPEN = "open", "Open"
    ON_HOLD = "on_hold", "On hold"


class Item(models.Model):
    """One unit of work in the queue: a conversation (and the model's response, if any) to label."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    batch = models.ForeignKey(ImportBatch, on_delete=models.PROTECT, null=True, related_name="items")
    kind = models.CharField(max_length=16, default="sft")
    external_id = models.CharField(max_length=200, blank=True)
    messages = models.JSONField()  # [{"role": ..., "content": ...}], scrubbed
    # None means "no model answer to review" (write from scratch), which differs from an empty answer.
    response = models.TextField(null=True, blank=True)  # noqa: DJ001
    metadata = models.JSONField(default=dict, blank=True)
    # Comparison items: [{"content", "provenance": {"model", "version", "adapter", "decoding", ...}}]; a
    # candidate's id is its index here. Provenance never reaches an annotator's page.
    candidates = models.JSONField(default=list, blank=True)
    gold = models.JSONField(null=True, blank=True)  # the known answer of a gold comparison, in candidate ids
    content_hash = models.CharField(max_length=64)
    priority = models.SmallIntegerField(default=0)
    edge_case = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=ItemState.choices, default=ItemState.OPEN)
    hold_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "content_hash"], name="one_item_per_content")]
        indexes = [
            models.Index(fields=["project", "state", "-priority", "id"], name="item_queue_order"),
            # The gold pick of "next comparison" walks a project's gold items from a random id: a few index
            # probes instead of reading every item (docs/PERFORMANCE.md). Partial, so it stays small.
            models.Index(fields=["project", "id"], name="item_gold", condition=models.Q(gold__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"item #{self.pk}"


class SlotState(models.TextChoices):
    FREE = "free", "Free"
    LEASED = "leased", "Leased"
    DONE = "done", "Done"


class Slot(models.Model):
    """One of the ``k`` annotations an item needs. Claiming a slot is how work is handed out: there are
    exactly ``k`` rows per item, so ``k`` can never be overshot, and a row lock decides who gets one."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="slots")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")  # denormalised for the queue index
    index = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=8, choices=SlotState.choices, default=SlotState.FREE)
    user = models.ForeignKey(User, on_delete=models.PROTECT, null=True, related_name="slots")
    leased_until = models.DateTimeField(null=True, blank=True)
    priority = models.SmallIntegerField(default=0)  # copy of the item's, kept in step by the services

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "index"], name="slot_index_unique"),
            models.UniqueConstraint(fields=["item", "user"], condition=Q(user__isnull=False), name="one_slot_per_user"),
        ]
        indexes = [
            models.Index(fields=["project", "state", "-priority", "item", "index"], name="slot_queue_order"),
            # "Your own unfinished slot", asked first by every "next": the few leased slots of a user, not every
            # slot they ever finished (a full scan of those grew with the annotator's history).
            models.Index(fields=["user", "project"], condition=Q(state="leased"), name="slot_leased_by_user"),
        ]

    def __str__(self) -> str:
        return f"slot {self.index} of item #{self.item_id}"


class Skip(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user} skipped item #{self.item_id}"


class Draft(models.Model):
    """Autosaved work in progress: a closed tab loses nothing."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="drafts")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="drafts")
    data = models.JSONField(default=dict)
    time_spent_ms = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)
    # The open page (browser tab) that saved it last, "<random>.<ms when the page was rendered>": an older
    # tab of the same item may not overwrite what a newer one saved.
    page = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "user"], name="one_draft_per_user_item")]

    def __str__(self) -> str:
        return f"draft of {self.user} on item #{self.item_id}"


class Flag(models.TextChoices):
    EDGE_CASE = "edge_case", "Edge case"
    UNSAFE = "unsafe", "Unsafe"
    NEEDS_EXPERT = "needs_expert", "Needs another expert"
    PII_LEAK = "pii_leak", "PII slipped through"


class AnnotationState(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Sent back"


class Annotation(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(User, on_delete=models.PROTECT, related_name="annotations")
    rubric_version = models.ForeignKey(RubricVersion, on_delete=models.PROTECT, related_name="annotations")
    original_response = models.TextField(null=True, blank=True)  # noqa: DJ001 - None: there was no model answer
    response = models.TextField()
    scores = models.JSONField(default=dict)
    flags = models.JSONField(default=list, blank=True)
    note = models.TextField(blank=True)
    time_spent_ms = models.PositiveBigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=AnnotationState.choices, default=AnnotationState.SUBMITTED)
    submit_key = models.CharField(max_length=64)
    revision = models.PositiveSmallIntegerField(default=1)
    history = models.JSONField(default=list, blank=True)  # earlier revisions, oldest first
    submitted_at = models.DateTimeField(default=timezone.now)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # Imported from a peer tool: {"tool", "project", "annotator", "id", "at", "batch"}; None when written here.
    origin = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="one_annotation_per_user_item")]
        indexes = [models.Index(fields=["item", "state"], name="annotation_item_state")]

    def __str__(self) -> str:
        return f"annotation #{self.pk} by {self.annotator}"


class ReviewDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Send back"
    EDIT_APPROVE = "edit_approve", "Edit and approve"


class Review(models.Model):
    """A reviewer's decision. With edit-and-approve the reviewer's version is kept here and the
    annotator's stays on the annotation: both versions survive."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(User, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=16, choices=ReviewDecision.choices)
    comment = models.TextField(blank=True)
    edited_response = models.TextField(null=True, blank=True)  # noqa: DJ001 - None: the reviewer did not edit
    edited_scores = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.decision} of annotation #{self.annotation_id}"
