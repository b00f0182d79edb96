"""Who am I (for checking a token), and the JSON 404 for any /api/v1/ path that is not an endpoint."""

from __future__ import annotations

from django.urls import Resolver404, resolve
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from api import schema
from api.auth import acting_user, client_of
from api.errors import ApiError
from api.views.base import ApiView


class MeSerializer(serializers.Serializer):
    client = serializers.CharField(allow_null=True, help_text="The API client's name; null for a session.")
    scopes = serializers.ListField(child=serializers.CharField())
    user = serializers.CharField(help_text="Who is authenticated (a client's service user).")
    acting_user = serializers.CharField(help_text="Whose decisions workflow moves record.")
    connection = serializers.IntegerField(allow_null=True, help_text="Where documents you send come from.")


@extend_schema(tags=["Meta"])
class MeApi(ApiView):
    @extend_schema(
        operation_id="me",
        summary="The caller: client, scopes, acting user",
        responses={200: MeSerializer, **schema.READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        client = client_of(request)
        scopes = list(client.scopes) if client else []
        return Response(
            {
                "client": client.name if client else None,
                "scopes": scopes,
                "user": request.user.get_username(),
                "acting_user": acting_user(request).get_username(),
                "connection": client.connection_id if client else None,
            }
        )


class NotFoundApi(ApiView):
    """Any path under /api/v1/ that names no endpoint: a JSON 404, whatever the method."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    schema = None

    def _missing(self, request: Request, *args: object, **kwargs: object) -> Response:
        hint = ""
        if not request.path.endswith("/"):
            try:
                if resolve(request.path + "/").url_name != "not-found":
                    hint = f" Did you mean {request.path}/ (with the trailing slash)?"
            except Resolver404:
                pass
        raise ApiError(f"No API endpoint at {request.path}.{hint}", code="not_found", status_code=404)

    get = post = put = patch = delete = head = options = _missing
