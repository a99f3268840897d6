from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url

# The largest id a bigint column holds. A larger number finds nothing, but the drivers raise on it (SQLite's
# OverflowError, PostgreSQL's "out of range") instead of saying so: it must never reach a query.
MAX_ID = 2**63 - 1


def _ascii_number(value: object, digits: int) -> int | None:
    """A string of at most ``digits`` ASCII digits as an int ("²" and "٣" are digits to ``str.isdigit`` but
    not to ``int``)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= digits:
        return int(value)
    return None


def parse_count(value: object, default: int = 0) -> int:
    """A whole number from a form field (a rank, a time in ms): at most 18 ASCII digits; ``default`` for
    anything else."""
    number = _ascii_number(value, 18)
    return default if number is None else number


def parse_id(value: object) -> int | None:
    """``value`` as a row id, when it is one: an int, or a string of ASCII digits, from 1 to ``MAX_ID``.
    None for anything else."""
    if isinstance(value, bool):
        return None
    number = value if isinstance(value, int) else _ascii_number(value, 19)
    return number if number is not None and 0 < number <= MAX_ID else None


M = TypeVar("M", bound=Model)


def row_or_404(queryset: "QuerySet[M]", pk: object, missing: str) -> M:
    """The row of ``queryset`` whose primary key is ``pk``; ``Http404(missing)`` when there is none, and
    when ``pk`` is no id at all (it never reaches the database). The access helpers' last step: the
    queryset is already limited to what the user may see, so missing and forbidden answer alike."""
    found = queryset.filter(pk=pk).first() if parse_id(pk) is not None else None
    if found is None:
        raise Http404(missing)
    return found


class IdConverter:
    """``<id:pk>`` in a URL: ASCII digits that fit a bigint, so an absurd id in an address is a 404 and never
    an overflow in the database driver."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(value)  # the URL does not match: 404
        return number

    def to_url(self, value: int | str) -> str:
        return str(value)


def is_htmx(request: HttpRequest) -> bool:
    """True for requests htmx made for a fragment (django-htmx's middleware sets ``request.htmx``). A history
    restore (the Back button: htmx keeps no snapshots, so it asks the server) wants the whole page."""
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.history_restore_request


def render_work(
    request: HttpRequest, *, page: str, fragment: str, context: dict[str, Any], push_url: str | None
) -> HttpResponse:
    """A work page (labeling, comparing) with ``fragment`` as its work area: to htmx the fragment alone, with
    the address it now shows (``push_url``) for the browser's history; otherwise the whole page around it."""
    if is_htmx(request):
        response = render(request, fragment, context)
        if push_url is not None:
            response["HX-Push-Url"] = push_url
        return response
    return render(request, page, {**context, "workspace_template": fragment})


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
                return signed_out_response()
        return response


def signed_out_response() -> HttpResponse:
    """What an htmx request of a signed-out user gets: 401, and where to log in again."""
    signed_out = HttpResponse("Signed out: log in again.", status=401, content_type="text/plain")
    signed_out["X-Login-Url"] = resolve_url(settings.LOGIN_URL)
    return signed_out


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, except for a request whose session was deleted while it ran (its user logged out in another
    tab): Django answers 400 (``SessionInterrupted``), an htmx request (a draft being saved) gets the signed-out
    401 instead, which the page handles as any sign-out, keeping what was typed."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            return super().process_response(request, response)
        except SessionInterrupted:
            if is_htmx(request):
                return signed_out_response()
            raise
