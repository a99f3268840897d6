"""Erasures, taints and retention policies in the Django admin are read-only: the services write them, audited."""

from accounts.admin import register_read_only
from governance.models import Erasure, RetentionPolicy, Taint

register_read_only(
    Erasure,
    list_display=("id", "created_at", "actor", "mode", "state", "database_matches", "file_matches"),
    list_filter=("state", "mode"),
)
register_read_only(Taint, list_display=("erasure", "kind", "object_id", "label", "rebuilt_as"), list_filter=("kind",))
register_read_only(
    RetentionPolicy,
    list_display=("project", "import_upload_days", "failed_job_days", "orphaned_draft_days", "last_swept_at"),
)
