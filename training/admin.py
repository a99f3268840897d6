"""Training rows in the Django admin are read-only: jobs, adapters and base models change only through the
services (which audit), never by hand."""

from django.contrib import admin

from accounts.admin import ReadOnlyAdmin
from training.models import Adapter, BaseModel, TrainingJob, TrainingWorker


@admin.register(BaseModel)
class BaseModelAdmin(ReadOnlyAdmin):
    list_display = ("name", "state", "architecture", "parameter_count", "content_hash", "validated_at")
    list_filter = ("state",)


@admin.register(TrainingJob)
class TrainingJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "project", "kind", "state", "release", "base_model", "created_by", "created_at")
    list_filter = ("state", "kind")


@admin.register(Adapter)
class AdapterAdmin(ReadOnlyAdmin):
    list_display = ("name", "project", "sha256", "release_hash", "base_model_hash", "config_hash", "created_at")


@admin.register(TrainingWorker)
class TrainingWorkerAdmin(ReadOnlyAdmin):
    list_display = ("hostname", "bitsandbytes", "last_seen_at")
