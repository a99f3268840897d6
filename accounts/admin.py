from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import Model
from django.http import HttpRequest
from guardian.admin import GuardedModelAdmin

from accounts.models import ApiTokenInfo, AuditEvent, Membership, Project, User


@admin.register(User)
class EnclaveUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("Enclave", {"fields": ("display_name",)}))  # type: ignore[misc]
    list_display = ("username", "display_name", "email", "is_active", "is_staff", "last_login")


@admin.register(Project)
class ProjectAdmin(GuardedModelAdmin):
    list_display = ("name", "created_at", "created_by")
    search_fields = ("name",)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through the services (which audit them): shown, never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def register_read_only(model: type[Model], **options: Any) -> None:
    """Show ``model`` in the admin read-only, with ``options`` (``list_display``, ``list_filter``, …)."""
    admin.site.register(model, ReadOnlyAdmin, **options)


register_read_only(Membership, list_display=("project", "user", "role", "created_at"), list_filter=("role", "project"))

register_read_only(ApiTokenInfo, list_display=("token", "name", "last_used_at"))

register_read_only(
    AuditEvent,
    list_display=("seq", "created_at", "actor_label", "action", "object_type", "object_id", "project"),
    list_filter=("action",),
)
