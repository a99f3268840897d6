"""Annotation rows in the Django admin are read-only: imports, items, annotations and reviews change only
through the services (which audit them), never by hand."""

from accounts.admin import register_read_only
from annotation.models import Annotation, ImportBatch, Item, Review, RubricVersion

register_read_only(
    ImportBatch,
    list_display=("id", "project", "source_name", "fmt", "status", "imported_count", "bad_line_count", "created_at"),
    list_filter=("status", "fmt"),
)

register_read_only(
    Item,
    list_display=("id", "project", "kind", "state", "priority", "edge_case", "content_hash"),
    list_filter=("kind", "state"),
)

register_read_only(RubricVersion, list_display=("project", "version", "created_by", "created_at"))

register_read_only(
    Annotation, list_display=("id", "item", "annotator", "state", "revision", "submitted_at"), list_filter=("state",)
)

register_read_only(
    Review, list_display=("id", "annotation", "reviewer", "decision", "created_at"), list_filter=("decision",)
)
