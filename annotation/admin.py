"""Annotation rows in the Django admin are read-only: imports, items, annotations and reviews change only
through the services (which audit them), never by hand."""

from django.contrib import admin

from accounts.admin import ReadOnlyAdmin
from annotation.models import Annotation, ImportBatch, Item, Review, RubricVersion


@admin.register(ImportBatch)
class ImportBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "project", "source_name", "fmt", "status", "imported_count", "bad_line_count", "created_at")
    list_filter = ("status", "fmt")


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    list_display = ("id", "project", "kind", "state", "priority", "edge_case", "content_hash")
    list_filter = ("kind", "state")


@admin.register(RubricVersion)
class RubricVersionAdmin(ReadOnlyAdmin):
    list_display = ("project", "version", "created_by", "created_at")


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    list_display = ("id", "item", "annotator", "state", "revision", "submitted_at")
    list_filter = ("state",)


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ("id", "annotation", "reviewer", "decision", "created_at")
    list_filter = ("decision",)
