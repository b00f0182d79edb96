"""The base of every API view: token or staff session, scopes, throttling, the one error shape."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import generics
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.views import APIView

from api.auth import ClientTokenAuthentication, StaffSessionAuthentication
from api.errors import exception_handler
from api.pagination import ApiCursorPagination
from api.parsers import StrictJSONParser
from api.permissions import Access, ScopePermission
from api.throttling import ClientRateThrottle


class ApiView(APIView):
    authentication_classes = [ClientTokenAuthentication, StaffSessionAuthentication]
    permission_classes = [ScopePermission]
    throttle_classes = [ClientRateThrottle]
    parser_classes = [StrictJSONParser, FormParser, MultiPartParser]
    access: dict[str, Access] = {}

    def get_exception_handler(self) -> Any:
        return exception_handler


class ApiGenericView(ApiView, generics.GenericAPIView):
    filter_backends = [DjangoFilterBackend]
    pagination_class = ApiCursorPagination
