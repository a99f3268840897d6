"""How an audit event reads on the audit page: its details (the payload) as a small definition list of
readable fields, nested values as nested lists, long hashes shortened (the full value in the title) and the ids
of pages that exist linked; and its object, linked where a page shows it. Display only: the stored event and its
hash never change."""

import re
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from accounts.models import AuditEvent

# Objects (by ``object_type``) and payload keys naming them, with the page that shows one: (url name, whether
# the url takes the project's id first). Only pages a reader of the project's audit log can open are linked.
_PAGES = {
    "accounts.project": ("project_detail", False),
    "annotation.importbatch": ("import_detail", True),
    "preferences.adjudication": ("adjudicate", True),
    "releases.release": ("release_detail", True),
    "training.trainingjob": ("training_job", True),
    "training.adapter": ("adapter", True),
}
_KEY_PAGES = {
    "release": "releases.release",
    "batch": "annotation.importbatch",
    "job": "training.trainingjob",
    "adapter": "training.adapter",
    "adjudication": "preferences.adjudication",
}
_HASH = re.compile(r"^(sha256:)?[0-9a-f]{32,}$")
_NESTING_LIMIT = 4  # deeper than that, a value is shown as compact text


def _url(object_type: str, object_id: Any, project_id: int | None) -> str:
    page = _PAGES.get(object_type)
    if page is None or not str(object_id).isdigit():
        return ""
    name, in_project = page
    if in_project and project_id is None:
        return ""
    try:
        return reverse(name, args=[project_id, int(object_id)] if in_project else [int(object_id)])
    except NoReverseMatch:
        return ""


def object_link(event: AuditEvent) -> SafeString:
    """``object_type:object_id``, linked to the object's page when there is one."""
    if not event.object_type:
        return mark_safe("—")
    label = f"{event.object_type}:{event.object_id}" if event.object_id else event.object_type
    url = _url(event.object_type, event.object_id, event.project_id)
    return format_html('<a href="{}">{}</a>', url, label) if url else format_html("{}", label)


def _scalar(value: Any, *, key: str, project_id: int | None) -> SafeString:
    if value is None or value == "":
        return mark_safe('<span class="muted">—</span>')
    if isinstance(value, bool):
        return format_html("{}", "yes" if value else "no")
    text = str(value)
    if isinstance(value, str) and _HASH.match(value):
        return format_html('<span class="hash" title="{}">{}…</span>', value, value[: 12 + value.find(":") + 1])
    url = _url(_KEY_PAGES.get(key, ""), value, project_id) if isinstance(value, int) else ""
    if url:
        return format_html('<a href="{}">#{}</a>', url, value)
    if isinstance(value, str) and len(text) > 200:
        return format_html('<span title="{}">{}…</span>', text, text[:200])
    return format_html("{}", text)


def _value(value: Any, *, key: str, project_id: int | None, depth: int) -> SafeString:
    if isinstance(value, dict):
        if not value:
            return mark_safe('<span class="muted">none</span>')
        if depth >= _NESTING_LIMIT:
            return format_html("<code>{}</code>", value)
        return _definition_list(value, project_id=project_id, depth=depth + 1)
    if isinstance(value, list):
        if not value:
            return mark_safe('<span class="muted">none</span>')
        if all(not isinstance(v, dict | list) for v in value):
            return format_html_join(", ", "{}", ((_scalar(v, key=key, project_id=project_id),) for v in value))
        if depth >= _NESTING_LIMIT:
            return format_html("<code>{}</code>", value)
        items = format_html_join(
            "", "<li>{}</li>", ((_value(v, key=key, project_id=project_id, depth=depth + 1),) for v in value)
        )
        return format_html('<ol class="audit-list">{}</ol>', items)
    return _scalar(value, key=key, project_id=project_id)


def _definition_list(payload: dict[str, Any], *, project_id: int | None, depth: int) -> SafeString:
    rows = format_html_join(
        "",
        "<div><dt>{}</dt><dd>{}</dd></div>",
        (
            (str(key).replace("_", " "), _value(value, key=str(key), project_id=project_id, depth=depth))
            for key, value in payload.items()
        ),
    )
    return format_html('<dl class="audit-details">{}</dl>', rows)


def event_details(event: AuditEvent) -> SafeString:
    """The event's payload as a definition list of readable fields (empty when it has none)."""
    if not isinstance(event.payload, dict) or not event.payload:
        return mark_safe("")
    return _definition_list(event.payload, project_id=event.project_id, depth=0)
