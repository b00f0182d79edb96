"""Encrypted-at-rest JSON field (Fernet with key rotation).

Keys come from settings.ENCRYPTION_KEYS (newest first). With none configured, one key is derived from
SECRET_KEY so the embedded default works out of the box; production sets ENCRYPTION_KEYS.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = base64.urlsafe_b64encode(hashlib.sha256(f"ledgerlink:{secret_key}".encode()).digest())
        return MultiFernet([Fernet(derived)])
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt_json(value: Any) -> str:
    return fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> Any:
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ImproperlyConfigured(
            "a stored secret cannot be decrypted with ENCRYPTION_KEYS; was a key removed too early?"
        ) from None


class EncryptedJSONField(models.TextField):
    """A dict stored as a Fernet token; only ciphertext reaches the database."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return {}
        return decrypt_json(value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, dict):
            return value
        if value in (None, ""):
            return {}
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return decrypt_json(value)
        return value

    def get_prep_value(self, value: Any) -> str:
        return encrypt_json(value or {})

    def value_to_string(self, obj: models.Model) -> str:
        return "<encrypted>"
