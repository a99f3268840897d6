from django import template
from django.utils.safestring import SafeString

from accounts.audit_display import event_details, object_link
from accounts.models import AuditEvent, Role

register = template.Library()


@register.filter
def role_label(role: str | None) -> str:
    """The display name of a role value, e.g. ``project_admin`` → ``Project admin``."""
    if not role:
        return "Site staff"
    try:
        return str(Role(role).label)
    except ValueError:
        return role


@register.filter
def audit_details(event: AuditEvent) -> SafeString:
    """An audit event's payload as readable fields (``accounts.audit_display``)."""
    return event_details(event)


@register.filter
def audit_object(event: AuditEvent) -> SafeString:
    """An audit event's object, linked to its page where there is one."""
    return object_link(event)
