"""Preference rows in the Django admin are read-only: judgements, adjudications and annotator quality
change only through the services (which audit them), never by hand."""

from accounts.admin import register_read_only
from preferences.models import Adjudication, AgreementSnapshot, AnnotatorQuality, Judgement

register_read_only(
    Judgement,
    list_display=("id", "item", "annotator", "mode", "is_gold", "gold_correct", "too_fast", "created_at"),
    list_filter=("mode", "is_gold", "too_fast"),
)

register_read_only(
    AnnotatorQuality,
    list_display=("project", "annotator", "gold_seen", "gold_correct", "fast_judgements", "flagged", "excluded"),
    list_filter=("flagged", "excluded"),
)

register_read_only(Adjudication, list_display=("item", "agreement", "needed_since", "reviewer", "decided_at"))

register_read_only(AgreementSnapshot, list_display=("project", "computed_at", "judgements"))
