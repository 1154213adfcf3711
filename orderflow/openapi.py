"""OpenAPI post-processing: every operation documents its RFC 9457 problem responses."""

from __future__ import annotations

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details (application/problem+json).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "validation errors, one per field path (e.g. `lines.0.quantity`)",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string", "nullable": True},
                    "message": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
}

_EXAMPLES = {
    "400": (
        "validation-error",
        "Invalid request",
        "The request body or parameters are invalid.",
        [
            {
                "field": "lines.0.quantity",
                "message": "Ensure this value is greater than or equal to 1.",
                "code": "min_value",
            }
        ],
    ),
    "401": ("not-authenticated", "Unauthorized", "Authentication credentials were not provided.", None),
    "403": ("permission-denied", "Forbidden", "Staff only.", None),
    "404": ("not-found", "Not Found", "No such order.", None),
    "409": ("conflict", "Conflict", "a SHIPPED order cannot be cancelled", None),
    "422": (
        "idempotency-key-reused",
        "Unprocessable Entity",
        "this Idempotency-Key was used with a different request body",
        None,
    ),
}
_DESCRIPTIONS = {
    "400": "Invalid input (field errors in `errors`).",
    "401": "Missing, invalid or expired access token; or bad credentials.",
    "403": "Authenticated but not allowed (e.g. staff only, deactivated account).",
    "404": "No such resource, or it belongs to another customer.",
    "409": "The request conflicts with the resource's current state.",
    "422": "The Idempotency-Key was already used with another body.",
}


def _problem(code: str) -> dict:
    slug, title, detail, errors = _EXAMPLES[code]
    example = {"type": f"https://orderflow.dev/problems/{slug}", "title": title, "status": int(code), "detail": detail}
    if errors:
        example["errors"] = errors
    return {
        "description": _DESCRIPTIONS[code],
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}, "example": example}
        },
    }


def _error_codes(path: str, method: str, operation: dict) -> list[str]:
    codes = []
    if "requestBody" in operation or any(p.get("in") == "query" for p in operation.get("parameters", [])):
        codes.append("400")
    security = operation.get("security", [])
    if security and {} not in security:  # `{}` means anonymous callers are allowed too
        codes += ["401", "403"]
    if "{" in path:
        codes.append("404")
    if method in {"post", "patch"} and not path.startswith("/api/auth/"):
        codes.append("409")
    if path == "/api/orders/" and method == "post":
        codes.append("422")
    if path.startswith("/api/auth/"):
        codes.append("401")
    return sorted(set(codes))


def add_problem_responses(result: dict, generator, request, public) -> dict:
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _error_codes(path, method, operation):
                responses.setdefault(code, _problem(code))
    return result
