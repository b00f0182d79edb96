"""What the OpenAPI schema says beyond what the views declare: auth, the error shape, Idempotency-Key."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers


def only_api_endpoints(endpoints: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    """The schema documents /api/v1/ only (the admin, webhooks and sandboxes are not part of it)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/v1/")]


class ClientTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.ClientTokenAuthentication"
    name = "clientToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API client's token, shown once when an integration admin creates the client "
            "or issues a new token in the admin. Send `Authorization: Bearer llk_...`.",
        }


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(
        help_text="Dotted path of the field, e.g. `lines.0.unit_price`; empty "
        "when the problem is the whole document."
    )
    message = serializers.CharField()
    value = serializers.JSONField(allow_null=True, help_text="The value that was sent.")


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A short, stable slug, e.g. `validation_error`, `four_eyes`.")
    message = serializers.CharField()
    errors = FieldErrorSerializer(many=True)


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (a UUID) up to 255 characters. A retry with the same key and body gets "
    "the first answer again, with `Idempotent-Replayed: true`, and changes nothing; the same key with "
    "another body is refused (422). Keys are kept for API_IDEMPOTENCY_TTL_HOURS (24 by default).",
)


def _error(description: str, code: str, message: str) -> OpenApiResponse:
    return OpenApiResponse(
        ErrorSerializer,
        description=description,
        examples=[OpenApiExample(code, value={"code": code, "message": message, "errors": []})],
    )


VALIDATION_ERROR = OpenApiResponse(
    ErrorSerializer,
    description="Invalid input: every field problem with the value sent.",
    examples=[
        OpenApiExample(
            "validation_error",
            value={
                "code": "validation_error",
                "message": "Invalid input in lines.0.unit_price.",
                "errors": [
                    {
                        "field": "lines.0.unit_price",
                        "message": "unit_price '10.005' has more decimal places than GBP allows (2).",
                        "value": "10.005",
                    }
                ],
            },
        )
    ],
)
UNAUTHENTICATED = _error(
    "No valid token or session.", "not_authenticated", "Authentication credentials were not provided."
)
FORBIDDEN = _error(
    "The client lacks the scope, or the user the permission.",
    "permission_denied",
    "This API client lacks the 'read' scope.",
)
NOT_FOUND = _error("No such object.", "not_found", "No Invoice matches the given query.")
THROTTLED = _error(
    "Too many requests; `Retry-After` says when to try again.",
    "throttled",
    "Request was throttled. Expected available in 12 seconds.",
)
CONFLICT = _error(
    "The request conflicts with the object's state, or with a request still running with "
    "the same Idempotency-Key.",
    "idempotency_in_progress",
    "A request with this Idempotency-Key is still being processed; retry later.",
)
KEY_REUSED = _error(
    "The Idempotency-Key was used with a different request.",
    "idempotency_key_reused",
    "This Idempotency-Key was used with a different request body.",
)

READ_ERRORS = {401: UNAUTHENTICATED, 403: FORBIDDEN, 429: THROTTLED}
DETAIL_ERRORS = {**READ_ERRORS, 404: NOT_FOUND}
INVALID_CURSOR = _error("The cursor is not one this API gave out.", "not_found", "Invalid cursor")
LIST_ERRORS = {**READ_ERRORS, 400: VALIDATION_ERROR, 404: INVALID_CURSOR}
WRITE_ERRORS = {**READ_ERRORS, 400: VALIDATION_ERROR, 409: CONFLICT, 422: KEY_REUSED}
DETAIL_WRITE_ERRORS = {**WRITE_ERRORS, 404: NOT_FOUND}


def envelope(name: str, **fields: Any) -> Any:
    return inline_serializer(name, fields)
