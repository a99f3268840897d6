"""Preference rows in the Django admin are read-only: judgements, adjudications and annotator quality
change only through the services (which audit them), never by hand."""

from django.contrib import admin

from accounts.admin import ReadOnlyAdmin
from preferences.models import Adjudication, AgreementSnapshot, AnnotatorQuality, Judgement


@admin.register(Judgement)
class JudgementAdmin(ReadOnlyAdmin):
    list_display = ("id", "item", "annotator", "mode", "is_gold", "gold_correct", "too_fast", "created_at")
    list_filter = ("mode", "is_gold", "too_fast")


@admin.register(AnnotatorQuality)
class AnnotatorQualityAdmin(ReadOnlyAdmin):
    list_display = ("project", "annotator", "gold_seen", "gold_correct", "fast_judgements", "flagged", "excluded")
    list_filter = ("flagged", "excluded")


@admin.register(Adjudication)
class AdjudicationAdmin(ReadOnlyAdmin):
    list_display = ("item", "agreement", "needed_since", "reviewer", "decided_at")


@admin.register(AgreementSnapshot)
class AgreementSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("project", "computed_at", "judgements")
