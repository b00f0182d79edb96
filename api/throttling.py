"""Requests per API client (its own rate, else API_DEFAULT_THROTTLE_RATE); staff sessions per user."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from api.auth import client_of


class ClientRateThrottle(SimpleRateThrottle):
    scope = "api_client"

    def __init__(self) -> None:
        # The rate depends on the caller, so it is read per request in allow_request.
        pass

    def allow_request(self, request: Request, view: Any) -> bool:
        client = client_of(request)
        self.rate = (client.throttle_rate if client is not None else "") or settings.API_DEFAULT_THROTTLE_RATE
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        client = client_of(request)
        if client is not None:
            return f"api:throttle:client:{client.pk}"
        if request.user and request.user.is_authenticated:
            return f"api:throttle:user:{request.user.pk}"
        return f"api:throttle:anon:{self.get_ident(request)}"
