"""Cursor pagination: stable under inserts, opaque `next`/`previous` links, newest first."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500

    def __init__(self) -> None:
        self.page_size = settings.API_PAGE_SIZE
