from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
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
    """Memberships, tokens and audit events change only through services (which audit them)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ("project", "user", "role", "created_at")
    list_filter = ("role", "project")


@admin.register(ApiTokenInfo)
class ApiTokenInfoAdmin(ReadOnlyAdmin):
    list_display = ("token", "name", "last_used_at")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "created_at", "actor_label", "action", "object_type", "object_id", "project")
    list_filter = ("action",)
