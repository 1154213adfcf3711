"""RFC 9457 problem details for every API error (`application/problem+json`)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from orderflow.domain import DomainError

PROBLEM_TYPE_BASE = "https://orderflow.dev/problems/"
CONTENT_TYPE = "application/problem+json"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class Unprocessable(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request cannot be processed."
    default_code = "unprocessable"


def _flatten(errors, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error structure → [{"field": "lines.0.quantity", "message": ..., "code": ...}]."""
    out: list[dict[str, str]] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key == "non_field_errors":  # errors of the object itself belong to its own path
                out.extend(_flatten(value, prefix))
                continue
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            if isinstance(value, (dict, list)):
                out.extend(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
            else:
                out.extend(_flatten(value, prefix))
    else:
        out.append({"field": prefix or None, "message": str(errors), "code": getattr(errors, "code", "invalid")})
    return out


def problem(status_code: int, title: str, detail: str, code: str, **extra) -> dict:
    return {
        "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status_code,
        "detail": detail,
        **extra,
    }


def problem_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        exc = Conflict(str(exc), code=exc.code)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # unexpected errors: Django's 500 handling (JSON via handler500 below)
    title = response.status_text if hasattr(response, "status_text") else "Error"
    if isinstance(exc, exceptions.ValidationError):
        body = problem(
            response.status_code,
            "Invalid request",
            "The request body or parameters are invalid.",
            "validation_error",
            errors=_flatten(exc.detail),
        )
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        body = problem(response.status_code, title, str(detail), code)
    problem_response = Response(body, status=response.status_code, headers=dict(response.items()))
    renderer = getattr(context.get("request"), "accepted_renderer", None)
    if renderer is None or getattr(renderer, "format", "json") == "json":
        problem_response.content_type = CONTENT_TYPE
    return problem_response


def _plain(status_code: int, title: str, code: str):
    def view(request, exception=None):
        return JsonResponse(
            problem(status_code, title, title + ".", code), status=status_code, content_type=CONTENT_TYPE
        )

    return view


handler404 = _plain(404, "Not Found", "not_found")
handler500 = _plain(500, "Internal Server Error", "server_error")
