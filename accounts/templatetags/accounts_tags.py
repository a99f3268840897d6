from django import template

from accounts.models import Role

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
