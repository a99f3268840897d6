from django.http import HttpRequest


def is_htmx(request: HttpRequest) -> bool:
    """True for requests htmx made (django-htmx's middleware sets ``request.htmx``)."""
    return bool(getattr(request, "htmx", False))
