"""Releases in the Django admin are read-only: a built release never changes, and deleting goes through
the release page (files removed, tombstone kept, audited)."""

from django.contrib import admin

from accounts.admin import ReadOnlyAdmin
from releases.models import Release


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "project", "kind", "state", "hash", "built_at")
    list_filter = ("state", "kind")
