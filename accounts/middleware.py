"""Directory accounts read again from their directory when due, at their next request."""

from collections.abc import Callable

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from accounts.directories import directory_recheck_if_due


class DirectoryRecheckMiddleware:
    """A session of a directory account whose last check is older than ``DIRECTORY_RECHECK_SECONDS`` is checked
    against its directory before the request runs; an account the directory dropped is signed out here and
    sent to the login page (API tokens are checked in ``accounts.api_auth``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.directory and not directory_recheck_if_due(user, via_session=True):
            logout(request)
            return redirect("login")
        return self.get_response(request)
