"""Releases, drift reports and drift thresholds in the Django admin are read-only: a built release never changes,
and deleting goes through the release page (files removed, tombstone kept, audited)."""

from accounts.admin import register_read_only
from releases.models import DriftReport, EvalHealthSettings, Release

register_read_only(
    Release,
    list_display=("name", "version", "project", "kind", "state", "hash", "built_at"),
    list_filter=("state", "kind"),
)
# Drift reports are derived data a worker writes; thresholds change on the drift page (audited).
register_read_only(
    DriftReport, list_display=("id", "project", "release", "state", "flagged", "computed_at"), list_filter=("state",)
)
register_read_only(EvalHealthSettings, list_display=("project", "psi_max", "window_days", "updated_at"))
