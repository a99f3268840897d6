"""Preference collection: per-project settings, judgements over comparison items, adjudications and
agreement snapshots. Comparison items are ``annotation.Item`` rows of kind "comparison"; they share the
import path, the PII scrubbing and the slot queue with SFT items."""

from django.db import models
from django.utils import timezone

from accounts.models import Project, User
from annotation.models import Item

COMPARISON = "comparison"  # the kind of the items judged here


class JudgementMode(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise: A or B, with strength"
    RANKING = "ranking", "Rank all candidates (ties allowed)"
    PER_CRITERION = "per_criterion", "A choice per rubric criterion, plus overall"


class PreferenceSettings(models.Model):
    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="preferences")
    mode = models.CharField(max_length=16, choices=JudgementMode.choices, default=JudgementMode.PAIRWISE)
    rationale_required = models.BooleanField(default=False)
    gold_rate = models.FloatField(default=0.1)  # share of "next comparison" calls that serve a gold item
    gold_accuracy_threshold = models.FloatField(default=0.7)  # below this, the annotator is flagged
    gold_minimum = models.PositiveSmallIntegerField(default=5)  # gold judgements before a flag can be raised
    fast_fraction = models.FloatField(default=0.25)  # judgements faster than this × project median are flagged
    adjudication_threshold = models.FloatField(default=0.67)  # below this share agreeing, adjudicate
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"preference settings of {self.project}"


class Judgement(models.Model):
    """One annotator's preference on one comparison.

    ``displayed_order`` is the candidate ids in the order this annotator saw them (shuffled with ``seed``);
    ``result`` is the choice in candidate ids, mapped on the server; ``displayed_result`` keeps the choice
    in display positions, for the position-bias check.
    """

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judgements")
    annotator = models.ForeignKey(User, on_delete=models.PROTECT, related_name="judgements")
    mode = models.CharField(max_length=16, choices=JudgementMode.choices)
    seed = models.BigIntegerField()
    displayed_order = models.JSONField()
    result = models.JSONField()
    displayed_result = models.JSONField()
    rationale = models.TextField(blank=True)
    time_spent_ms = models.PositiveBigIntegerField(default=0)
    idempotency_key = models.CharField(max_length=64, unique=True)
    is_gold = models.BooleanField(default=False)
    gold_correct = models.BooleanField(null=True)
    too_fast = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # Imported from a peer tool: {"tool", "project", "annotator", "id", "at", "batch"}; None when judged here.
    origin = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="one_judgement_per_user_item")]
        indexes = [models.Index(fields=["item", "created_at"], name="judgement_item_time")]

    def __str__(self) -> str:
        return f"judgement #{self.pk} by {self.annotator}"


class GoldAssignment(models.Model):
    """A gold comparison handed to one annotator. Gold items have no slots (everyone judges each once), so
    this row is what lets them submit for it: a gold item they were never handed answers like any
    comparison that is not assigned to them, and cannot be found by trying ids."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    served_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="one_gold_assignment")]

    def __str__(self) -> str:
        return f"gold item #{self.item_id} for {self.annotator}"


class AnnotatorQuality(models.Model):
    """Gold accuracy and flags of one annotator in one project, kept current by the services."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    gold_seen = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    fast_judgements = models.PositiveIntegerField(default=0)
    flagged = models.BooleanField(default=False)
    excluded = models.BooleanField(default=False)  # a data lead excluded their judgements from releases
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "annotator"], name="one_quality_row")]

    def __str__(self) -> str:
        return f"quality of {self.annotator} in {self.project}"

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_seen if self.gold_seen else None


class Adjudication(models.Model):
    """A reviewer's final answer for a comparison whose judgements disagreed."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="adjudication")
    needed_since = models.DateTimeField(default=timezone.now)
    agreement = models.FloatField()  # share of judgements agreeing with the majority when it was opened
    reviewer = models.ForeignKey(User, on_delete=models.PROTECT, null=True, related_name="+")
    result = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"adjudication of item #{self.item_id}"


class AgreementSnapshot(models.Model):
    """Agreement figures of a project, recomputed by a Celery task; the page shows the latest. It counts the
    ``judgements`` (non-gold) committed when they were read, at ``computed_at``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField(default=timezone.now)
    judgements = models.PositiveIntegerField()
    last_judgement_id = models.BigIntegerField(null=True, blank=True)  # with the count: did judgements change since?
    figures = models.JSONField()

    class Meta:
        ordering = ["-computed_at"]

    def __str__(self) -> str:
        return f"agreement of {self.project} at {self.computed_at:%Y-%m-%d %H:%M}"
