"""Training rows in the Django admin are read-only: jobs, adapters and base models change only through the
services (which audit), never by hand."""

from accounts.admin import register_read_only
from training.models import Adapter, BaseModel, MlflowRun, TrainingJob, TrainingWorker

register_read_only(
    BaseModel,
    list_display=("name", "state", "architecture", "parameter_count", "content_hash", "validated_at"),
    list_filter=("state",),
)

register_read_only(
    TrainingJob,
    list_display=("id", "project", "kind", "state", "release", "base_model", "created_by", "created_at"),
    list_filter=("state", "kind"),
)

register_read_only(
    Adapter, list_display=("name", "project", "sha256", "release_hash", "base_model_hash", "config_hash", "created_at")
)

register_read_only(TrainingWorker, list_display=("hostname", "bitsandbytes", "last_seen_at"))

register_read_only(
    MlflowRun, list_display=("job", "state", "experiment_name", "run_id", "model_version", "attempts", "updated_at"),
    list_filter=("state",),
)  # fmt: skip
