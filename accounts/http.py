from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url


def is_htmx(request: HttpRequest) -> bool:
    """True for requests htmx made for a fragment (django-htmx's middleware sets ``request.htmx``). A history
    restore (the Back button: htmx keeps no snapshots, so it asks the server) wants the whole page."""
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.history_restore_request


class HtmxLoginRequiredMiddleware:
    """An htmx request from a signed-out user (the session ended, or they logged out in another tab) gets 401
    instead of the redirect to the login page: htmx would follow the redirect and swap the login form into
    the middle of the work. With 401 nothing is swapped; the page keeps what was typed and says how to go on
    (``static/js/enclave.js``). Full page loads still redirect to the login page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 302 and is_htmx(request) and not request.user.is_authenticated:
            login = resolve_url(settings.LOGIN_URL)
            if urlsplit(response["Location"]).path == login:
                signed_out = HttpResponse("Signed out: log in again.", status=401, content_type="text/plain")
                signed_out["X-Login-Url"] = login
                return signed_out
        return response
