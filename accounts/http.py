from django.http import HttpRequest


def is_htmx(request: HttpRequest) -> bool:
    """True for requests htmx made for a fragment (django-htmx's middleware sets ``request.htmx``). A history
    restore (the Back button: htmx keeps no snapshots, so it asks the server) wants the whole page."""
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.history_restore_request
