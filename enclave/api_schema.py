"""What the API answers when it refuses, and where an answer leads, written into the OpenAPI schema
(drf-spectacular postprocessing hooks).

``document_errors``: every operation that needs a token documents its 401, those with an id in the path their
404, those with a body or query parameters their 400, those with a body their 413 and 415, and a 401, 404, 409,
422, 429 or 503 a view declares with a description only gets the domain error's body (``enclave.api_errors``).

``document_links``: OpenAPI links from what an operation answers to the operations that take it: from a list
(its first row) and from a create to every operation whose path ends in that object's id, the ids before it
carried over from the request; and the few that are not found by their path (a release's files, a merged
model's files, the two releases of a diff, the comparison ``next`` hands out). Clients read them as "where to go
next"; the fuzzing test (tests/enclave/test_api_fuzz.py) follows them from what one call made to the calls that use it.
"""

import re
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
    "description": "Input that does not validate: each field named with its messages (non_field_errors for the "
    "whole). A nested object's errors are nested the same way, a list's by the position of the element, counting "
    'from 0 (`{"criteria": {"1": {"scale": ["…"]}}}`).',
    "additionalProperties": {"$ref": "#/components/schemas/FieldMessages"},
}
FIELD_MESSAGES = {
    "description": "The messages of one field, or the errors of a nested object or list element by name or position.",
    "oneOf": [
        {"type": "array", "items": {"oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/FieldErrors"}]}},
        {"$ref": "#/components/schemas/FieldErrors"},
    ],
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _require_a_body_with_required_fields(body: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A body whose schema has required fields is itself required: without one the answer is a 400."""
    for content in body.get("content", {}).values():
        ref = content.get("schema", {}).get("$ref", "")
        if schemas.get(ref.rsplit("/", 1)[-1], {}).get("required"):
            body["required"] = True


def _holds_a_character(schema: Any) -> None:
    """A text field that must not be blank says so: the API trims spaces around text, so "  " is blank too."""
    if not isinstance(schema, dict):
        return
    if (
        schema.get("type") == "string"
        and schema.get("minLength", 0) >= 1
        and not {"pattern", "format", "enum"} & set(schema)
    ):
        schema["pattern"] = r"\S"
    for value in [*schema.get("properties", {}).values(), schema.get("items"), *schema.get("oneOf", ())]:
        _holds_a_character(value)


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for component in schemas.values():
        _holds_a_character(component)
    schemas["Error"] = ERROR
    schemas["FieldErrors"] = FIELD_ERRORS
    schemas["FieldMessages"] = FIELD_MESSAGES
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code in (
                "401",
                "404",
                "409",
                "422",
                "429",
                "503",
            ):  # declared with a description only: the body is an Error
                if code in responses and "content" not in responses[code]:
                    responses[code]["content"] = _error("")["content"]
            if {} not in operation.get("security", []):
                responses.setdefault("401", _error("No token, or an invalid or expired one."))
            if "{" in path:
                responses.setdefault(
                    "404", _error("No such object, or one the caller may not see (the two answer alike).")
                )
            if "requestBody" in operation:
                _require_a_body_with_required_fields(operation["requestBody"], schemas)
                uploads = "multipart/form-data" in operation["requestBody"].get("content", {})
                responses.setdefault(
                    "413",
                    _error(
                        "The body is over its limit, named in `limit_bytes`: 2.5 MiB for JSON"
                        + (", IMPORT_MAX_MB (default 1 GiB) for a file upload." if uploads else ".")
                    ),
                )
                responses.setdefault("415", _error("A content type this operation does not take."))
            if operation.get("parameters"):
                responses.setdefault(
                    "414",
                    {
                        "description": "The request line (method, address and query) is longer than the web server "
                        "takes (gunicorn's limit_request_line, 4094 bytes); answered by the web server.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                )
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


_PARAM = re.compile(r"\{(\w+)\}")
# The field of an answer that fills a path parameter, where it is not `id`.
_ID_FIELDS = {"token_key": "token_key", "index": "index", "name": "name"}


def _component(schema: dict[str, Any] | None, result: dict[str, Any]) -> dict[str, Any] | None:
    ref = (schema or {}).get("$ref", "")
    found: dict[str, Any] | None = result["components"]["schemas"].get(ref.rsplit("/", 1)[-1]) if ref else None
    return found


def _json_schema(response: dict[str, Any] | None) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (response or {}).get("content", {}).get("application/json", {}).get("schema")
    return found


def _row_pointer(operation: dict[str, Any], result: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """Where a list's first row is in its 200 answer, and the row's schema."""
    schema = _json_schema(operation.get("responses", {}).get("200"))
    if schema is None:
        return None
    if schema.get("type") == "array":
        row = _component(schema.get("items"), result)
        return ("/0", row) if row else None
    page = _component(schema, result) or {}
    results = page.get("properties", {}).get("results", {})
    row = _component(results.get("items"), result)
    return ("/results/0", row) if row else None


def _created(operation: dict[str, Any], result: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """A create's success code and the schema of what it answers."""
    for code in ("201", "202"):
        made = _component(_json_schema(operation.get("responses", {}).get(code)), result)
        if made is not None:
            return code, made
    return None


def _link(links: dict[str, Any], target: dict[str, Any], parameters: dict[str, str], description: str) -> None:
    links[target["operationId"]] = {
        "operationId": target["operationId"],
        "parameters": parameters,
        "description": description,
    }


def document_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = result.get("paths", {})
    for path, operations in paths.items():
        names = _PARAM.findall(path)
        if not names:
            continue
        last = names[-1]
        collection = path[: path.index("{" + last + "}")]
        field = _ID_FIELDS.get(last, "id")
        carried = {name: f"$request.path.{name}" for name in names[:-1]}
        sources = paths.get(collection, {})
        for method, target in operations.items():
            listed = _row_pointer(sources["get"], result) if "get" in sources else None
            if listed is not None and field in listed[1].get("properties", {}):
                responses = sources["get"]["responses"]["200"].setdefault("links", {})
                _link(responses, target, {last: f"$response.body#{listed[0]}/{field}", **carried},
                      f"{method.upper()} {path} with the first row's `{field}`")  # fmt: skip
            created = _created(sources["post"], result) if "post" in sources else None
            row = listed[1] if listed is not None else None
            # A create whose answer is the list's row (or more of it): its id is the new row's.
            if created is not None and row is not None and set(row["properties"]) <= set(created[1]["properties"]):
                responses = sources["post"]["responses"][created[0]].setdefault("links", {})
                _link(responses, target, {last: f"$response.body#/{field}", **carried},
                      f"{method.upper()} {path} with the created `{field}`")  # fmt: skip
    _extra_links(paths)
    return result


def _extra_links(paths: dict[str, dict[str, Any]]) -> None:
    project = "/api/v1/projects/{id}"
    release = f"{project}/releases/{{release_pk}}/"
    if release in paths:
        target = paths[f"{release}files/{{file_pk}}/"]["get"]
        links = paths[release]["get"]["responses"]["200"].setdefault("links", {})
        _link(links, target, {"id": "$request.path.id", "release_pk": "$request.path.release_pk",
                              "file_pk": "$response.body#/files/0/id"}, "The release's first file")  # fmt: skip
    merged = f"{project}/adapters/{{adapter_pk}}/merged/"
    if merged in paths:
        links = paths[merged]["get"]["responses"]["200"].setdefault("links", {})
        _link(links, paths[f"{merged}files/{{index}}/"]["get"], {"id": "$request.path.id",
              "adapter_pk": "$request.path.adapter_pk", "index": "$response.body#/files/0/index"},
              "The merged model's first file")  # fmt: skip
    releases = paths.get(f"{project}/releases/", {}).get("get")
    if releases is not None:
        links = releases["responses"]["200"].setdefault("links", {})
        _link(links, paths[f"{project}/releases/diff/"]["get"], {"id": "$request.path.id",
              "a": "$response.body#/results/1/id", "b": "$response.body#/results/0/id"},
              "What changed from the second release listed to the first")  # fmt: skip
    shown = paths.get(f"{project}/comparisons/next/", {}).get("post")
    if shown is not None:
        links = shown["responses"]["200"].setdefault("links", {})
        for ending in ("judgements/", "judgements/and-next/"):
            target = paths[f"{project}/comparisons/{{item_pk}}/{ending}"]["post"]
            _link(links, target, {"id": "$request.path.id", "item_pk": "$response.body#/id"},
                  "Judge the comparison handed out")  # fmt: skip
