"""Settings of the API: DRF (authentication, JSON only, errors), API tokens (knox), request size limits and the
OpenAPI schema (drf-spectacular). ``base.py`` takes them all."""

from datetime import timedelta

from enclave.settings.env import env_int

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies only: a form cannot say "empty" from "left out" (DRF reads `name=` as no name) nor carry the
    # nested objects. The upload routes name their multipart parser themselves.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "enclave.api_errors.exception_handler",
}
# Request size limits. A JSON or form body: Django's DATA_UPLOAD_MAX_MEMORY_SIZE, read into memory (2.5 MiB,
# about 3,000 comparisons of 1 KB). A file upload (imports) streams to disk and may be up to IMPORT_MAX_MB.
# Over either limit the API answers 413 naming the limit (enclave.api_errors).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_MB", 1024, minimum=1, maximum=1024 * 1024) * 1024 * 1024
KNOX_TOKEN_MODEL = "knox.AuthToken"  # noqa: S105 - a model name, not a secret
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=env_int("API_TOKEN_DAYS", 90, minimum=1)),
    "TOKEN_PREFIX": "enclave_",
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Enclave API",
    "DESCRIPTION": "Projects, members and the audit log; imports, items, annotations and reviews; comparisons, "
    "judgements and agreement; dataset releases, their files, datasheets and diffs; base models, training jobs "
    "and adapters of an Enclave installation. Authenticate with `Authorization: Token <token>` (create tokens "
    'on the API tokens page). A refusal answers JSON: `{"detail", "field"}` for a domain rule (400, or '
    "409 for a conflict such as a second judgement of one comparison), field errors for input that does not "
    "validate, 404 alike for what does not exist and what the caller may not see. Limits: a JSON or form body "
    f"may be up to 2.5 MiB and a file upload (imports, comparisons as JSONL) up to {IMPORT_MAX_BYTES // 2**20:,} "
    "MiB (IMPORT_MAX_MB); "
    "over either the answer is 413 with the limit in `limit_bytes`. A content type an operation does not take "
    "answers 415, malformed JSON 400, an unknown or invalid filter or query parameter 400 naming it. An import "
    "answers 201 when done, 202 when a worker runs it (poll `status_url`), 422 when refused for bad lines (its "
    "`errors` numbered by line; nothing imported). Lists page with `limit` (at most 1,000) and `offset`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema describes routes, not data: readable without a token (the docs page asks for a login).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "enclave.api_schema.document_errors",
        "enclave.api_schema.document_links",
    ],
}
