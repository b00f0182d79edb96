"""django-q2 entry points for the API (safe to run twice)."""

from __future__ import annotations

from api.idempotency import idempotency_keys_purge


def idempotency_keys_expire() -> int:
    return idempotency_keys_purge()
