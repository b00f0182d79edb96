"""One JSON shape for every error the API answers:

    {"code": "validation_error", "message": "...", "errors": [{"field": "lines.0.quantity",
     "message": "...", "value": "abc"}]}

`errors` lists field problems (empty when the error is not about fields); `value` is what was sent.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

log = logging.getLogger(__name__)

_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "parse_error",
    exceptions.ValidationError: "validation_error",
}


class ApiError(exceptions.APIException):
    """A refusal with its own code, status and optional field errors."""

    def __init__(
        self, message: str, *, code: str, status_code: int = 400, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.errors = errors or []


def error_body(code: str, message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors or []}


def _value_at(data: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data if isinstance(data, str | int | float | bool) or data is None else _short(data)


def _short(value: Any) -> Any:
    # A whole object or list is not repeated back; its type says enough.
    return f"<{type(value).__name__}>"


def field_errors(detail: Any, data: Any, prefix: list[str] | None = None) -> list[dict[str, Any]]:
    """DRF's nested error detail -> a flat list with dotted field paths and the values sent."""
    prefix = prefix or []
    found: list[dict[str, Any]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = prefix if key in ("non_field_errors", "__all__") else [*prefix, str(key)]
            found += field_errors(value, data, path)
    elif isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            for item in detail:
                found.append(
                    {"field": ".".join(prefix), "message": str(item), "value": _value_at(data, prefix)}
                )
        else:
            for index, item in enumerate(detail):
                if item:
                    found += field_errors(item, data, [*prefix, str(index)])
    elif detail:
        found.append({"field": ".".join(prefix), "message": str(detail), "value": _value_at(data, prefix)})
    return found


def _request_data(context: dict[str, Any]) -> Any:
    request = context.get("request")
    try:
        if request is not None and request.method in ("GET", "HEAD"):
            return request.query_params.dict()  # filters: the values are in the query string
        return request.data if request is not None else None
    except Exception:
        return None


# Workflow refusals about who acts are 403; about the state the thing is in, 409; the rest are 400.
_FORBIDDEN_WORKFLOW_CODES = {"four_eyes", "permission"}
_CONFLICT_WORKFLOW_CODES = {
    "stale",  # the document changed since the proposal: propose again
    "invalid_move",
    "already_decided",
    "expired",
    "not_approved",
    "already_proposed",
    "already_bound",
    "not_revertible",
    "apply_failed",
    "over_limit",
    "no_change",
}


class _NoWorkflowError(Exception):
    pass


def _workflow_errors() -> tuple[type[Exception], type[Exception]]:
    try:
        from reconciliation.workflow import FourEyesError, WorkflowError
    except ImportError:
        return _NoWorkflowError, _NoWorkflowError
    return WorkflowError, FourEyesError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's exception handler for every API view: always the one shape, never an HTML page."""
    headers: dict[str, str] = {}
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )

    workflow_error, four_eyes_error = _workflow_errors()
    if isinstance(exc, workflow_error):
        code = getattr(exc, "code", "") or "workflow_refused"
        if isinstance(exc, four_eyes_error) or code in _FORBIDDEN_WORKFLOW_CODES:
            status_code = status.HTTP_403_FORBIDDEN
        elif code in _CONFLICT_WORKFLOW_CODES:
            status_code = status.HTTP_409_CONFLICT
        else:
            status_code = status.HTTP_400_BAD_REQUEST  # the request itself is wrong (a reason missing ...)
        exc = ApiError(str(exc), code=code, status_code=status_code)

    if isinstance(exc, ApiError):
        body = error_body(exc.code, str(exc.detail), exc.errors)
        status_code = exc.status_code
    elif isinstance(exc, exceptions.ValidationError):
        errors = field_errors(exc.detail, _request_data(context))
        fields = sorted({item["field"] for item in errors if item["field"]})
        message = (
            f"Invalid input in {', '.join(fields[:5])}{' and more' if len(fields) > 5 else ''}."
            if fields
            else (errors[0]["message"] if errors else "Invalid input.")
        )
        body = error_body("validation_error", message, errors)
        status_code = exc.status_code
    elif isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None) or str(
            exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        )
        body = error_body(code, str(exc.detail))
        status_code = exc.status_code
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    else:
        log.exception("API request failed", exc_info=exc)
        body = error_body("server_error", "The server failed to answer this request; it has been logged.")
        status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    set_rollback()
    return Response(body, status=status_code, headers=headers)
