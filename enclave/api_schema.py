"""What the API answers when it refuses, written into the OpenAPI schema (a drf-spectacular postprocessing
hook): every operation that needs a token documents its 401, those with an id in the path their 404, those
with a body or query parameters their 400, those with a body their 413 and 415, and a 409, 422, 429 or 503
a view declares with a description only gets the domain error's body (``enclave.api_errors``)."""

from typing import Any

ERROR = {
    "type": "object",
    "description": "A refusal that says what to fix.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, in words for a person."},
        "field": {"type": "string", "description": "The input field to blame, when there is one."},
        "limit_bytes": {"type": "integer", "description": "With a 413: the largest body this request may send."},
        "code": {"type": "string", "description": "With a 413: `request_too_large`."},
    },
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "Input that does not validate: each field named with its messages (non_field_errors for the whole).",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR
    schemas["FieldErrors"] = FIELD_ERRORS
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code in ("409", "422", "429", "503"):  # declared with a description only: the body is an Error
                if code in responses and "content" not in responses[code]:
                    responses[code]["content"] = _error("")["content"]
            if {} not in operation.get("security", []):
                responses.setdefault("401", _error("No token, or an invalid or expired one."))
            if "{" in path:
                responses.setdefault(
                    "404", _error("No such object, or one the caller may not see (the two answer alike).")
                )
            if "requestBody" in operation:
                uploads = "multipart/form-data" in operation["requestBody"].get("content", {})
                responses.setdefault(
                    "413",
                    _error(
                        "The body is over its limit, named in `limit_bytes`: 2.5 MiB for JSON"
                        + (", IMPORT_MAX_MB (default 1 GiB) for a file upload." if uploads else ".")
                    ),
                )
                responses.setdefault("415", _error("A content type this operation does not take."))
            if "requestBody" in operation or operation.get("parameters"):
                responses.setdefault(
                    "400",
                    {
                        "description": "The input was refused: a domain rule (Error) or fields that do not validate.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Error"},
                                        {"$ref": "#/components/schemas/FieldErrors"},
                                    ]
                                }
                            }
                        },
                    },
                )
    return result
