"""Releases in the Django admin are read-only: a built release never changes, and deleting goes through
the release page (files removed, tombstone kept, audited)."""

from accounts.admin import register_read_only
from releases.models import Release

register_read_only(
    Release,
    list_display=("name", "version", "project", "kind", "state", "hash", "built_at"),
    list_filter=("state", "kind"),
)
