"""Who is calling: an API client by its token, or a staff user through the browsable API's session."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from knox.auth import TokenAuthentication
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request

from api.models import ApiClient

# last_used_at is written at most this often per client: a busy client does not write on every request
LAST_USED_GRANULARITY_SECONDS = 60


class ClientTokenAuthentication(TokenAuthentication):
    """`Authorization: Bearer <token>`: a knox token of an active client's service user."""

    def validate_user(self, auth_token: Any) -> tuple[Any, Any]:
        user, token = super().validate_user(auth_token)
        client = ApiClient.objects.select_related("person", "connection").filter(service_user=user).first()
        if client is None or not client.active:
            from rest_framework.exceptions import AuthenticationFailed

            raise AuthenticationFailed("This token belongs to no active API client.")
        now = timezone.now()
        if client.last_used_at is None or (now - client.last_used_at).total_seconds() > (
            LAST_USED_GRANULARITY_SECONDS
        ):
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        user._api_client = client
        return user, token


class StaffSessionAuthentication(SessionAuthentication):
    """The browsable API and Swagger UI for logged-in staff; their Django permissions apply."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is None or not result[0].is_staff:
            return None
        return result


def client_of(request: Request) -> ApiClient | None:
    """The API client behind the request, None for a staff user's session."""
    return getattr(request.user, "_api_client", None)


def acting_user(request: Request) -> Any:
    """Whose decision a workflow move is: the client's linked person once they confirmed the link, else
    its service user; the staff user for a session.

    Through a client the user also carries the client (`_api_client`, named in history) and every user the
    four-eyes rule counts as the same person (`four_eyes_ids`: see ApiClient.people_ids)."""
    client = client_of(request)
    if client is None:
        return request.user
    user = client.acting_user
    user._api_client = client
    user.four_eyes_ids = client.people_ids()
    return user
