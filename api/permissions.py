"""Per-operation access: an API client needs the scope, a staff user the Django permission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.auth import client_of


@dataclass(frozen=True)
class Access:
    scope: str
    perms: tuple[str, ...]


def access(scope: str, *perms: str) -> Access:
    return Access(scope, perms)


class ScopePermission(BasePermission):
    """Reads the view's `access` table: HTTP method -> Access."""

    message = "Not allowed."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        table = getattr(view, "access", {})
        needed = table.get(request.method) or (
            table.get("GET") if request.method in ("HEAD", "OPTIONS") else None
        )
        if needed is None:
            return True  # an unsupported method: the view answers 405
        client = client_of(request)
        if client is not None:
            if not client.has_scope(needed.scope):
                self.message = f"This API client lacks the {needed.scope!r} scope."
                return False
            return True
        missing = [perm for perm in needed.perms if not request.user.has_perm(perm)]
        if missing:
            self.message = f"You lack the permission {missing[0]!r}."
            return False
        return True
