"""How the API refuses, in JSON and never an HTML page.

- ``exception_handler`` (DRF's ``EXCEPTION_HANDLER``): domain errors become a 400 (409 for a conflict) whose
  body says what to fix; a body over the limit becomes a 413 that names the limit; too many fields or files
  and Django's other ``SuspiciousOperation`` refusals become a 400. DRF itself answers 415 for a content type
  the route does not take and 400 for malformed JSON.
- ``ApiRequestLimitsMiddleware`` refuses, before a view runs, a request under ``/api/`` whose declared
  ``Content-Length`` is over its limit (``settings.DATA_UPLOAD_MAX_MEMORY_SIZE`` for JSON and forms,
  ``settings.IMPORT_MAX_BYTES`` for multipart file uploads) and a request for a host not in
  ``ALLOWED_HOSTS``. It reads and discards the body it refuses (up to ``DRAIN_MAX_BYTES``), so that a client
  still sending gets the 413 instead of a connection reset.
- ``api_bad_request`` and ``api_server_error`` are the 400 and 500 handlers: under ``/api/`` they answer JSON.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import DomainError

logger = logging.getLogger("enclave.api")

API_PREFIX = "/api/"
# A refused body up to this size is read and thrown away before the answer, so that a client that sends the
# whole body before it reads (most do, urllib and requests among them) reads the 413. A larger one is answered
# at once with "Connection: close"; a client that sent "Expect: 100-continue" has not sent it yet.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
_DRAIN_CHUNK = 256 * 1024


def _size(n: int) -> str:
    mib = n / (1024 * 1024)
    return f"{n:,} bytes ({mib:.1f} MiB)" if mib >= 0.1 else f"{n:,} bytes"


def body_too_large(*, limit: int, length: int | None, kind: str) -> dict[str, Any]:
    """The body of a 413: what was sent, the limit, and what to do instead."""
    sent = f"The request body is {_size(length)}; " if length else "The request body is too large; "
    if kind == "upload":
        advice = "Split the file, or ask the administrator to raise IMPORT_MAX_MB."
    else:
        advice = (
            "Send fewer elements per request, or upload them as a JSONL file "
            "(multipart/form-data, field `file`): imports take up to "
            f"{_size(settings.IMPORT_MAX_BYTES)}."
        )
    what = "a file upload" if kind == "upload" else "a JSON or form body"
    return {
        "detail": f"{sent}{what} may be at most {_size(limit)}. {advice}",
        "limit_bytes": limit,
        "code": "request_too_large",
    }


def _json_limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return Response(body, status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        # Raised while the body is read: a JSON body over the limit, or a multipart upload whose form fields
        # (not its files) are; either way the limit is DATA_UPLOAD_MAX_MEMORY_SIZE.
        request = context.get("request")
        length = _content_length(request._request) if request is not None else None
        return Response(body_too_large(limit=_json_limit(), length=length, kind="body"), status=413)
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return Response(
            {"detail": f"Too many fields or query parameters: at most {limit} are taken.", "limit": limit}, status=400
        )
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return Response({"detail": f"Too many files: at most {limit} are taken.", "limit": limit}, status=400)
    if isinstance(exc, SuspiciousOperation):
        logger.warning("Refused an API request: %s", exc)
        return Response({"detail": "The request was refused as malformed."}, status=400)
    return drf_exception_handler(exc, context)


def _content_length(request: HttpRequest) -> int | None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        return None
    return length if length > 0 else None


def _drain(request: HttpRequest, length: int) -> bool:
    """Read and discard a refused body; False when it is too large to be worth reading."""
    if length > DRAIN_MAX_BYTES:
        return False
    left = length
    try:
        while left > 0:
            chunk = request.read(min(_DRAIN_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
    except OSError:
        return False
    return True


class ApiRequestLimitsMiddleware:
    """Answers JSON, before anything reads the body, for API requests that are too large or for an unknown
    host. First in ``MIDDLEWARE``: a host check by a later middleware would answer Django's HTML 400 and log
    an ERROR for what is a client's mistake."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost as exc:
            logger.warning("Refused an API request for a host not in ALLOWED_HOSTS: %s", exc)
            return JsonResponse({"detail": "Unknown host: it is not in ALLOWED_HOSTS."}, status=400)
        length = _content_length(request)
        if length is not None:
            upload = request.content_type == "multipart/form-data"
            limit = int(settings.IMPORT_MAX_BYTES) if upload else _json_limit()
            if length > limit:
                response = JsonResponse(
                    body_too_large(limit=limit, length=length, kind="upload" if upload else "body"), status=413
                )
                if not _drain(request, length):
                    response["Connection"] = "close"
                return response
        return self.get_response(request)


def api_bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400 handler: what Django refuses before the API's own handling (a malformed request) answers JSON
    under /api/."""
    if request.path.startswith(API_PREFIX):
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(
                body_too_large(limit=_json_limit(), length=_content_length(request), kind="body"), status=413
            )
        return JsonResponse({"detail": "The request was refused as malformed."}, status=400)
    return defaults.bad_request(request, exception)


def api_server_error(request: HttpRequest) -> HttpResponse:
    """500 handler: a fault of ours still answers JSON under /api/ (and is logged with its traceback)."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Internal error: the server failed; it has been logged."}, status=500)
    return defaults.server_error(request)
