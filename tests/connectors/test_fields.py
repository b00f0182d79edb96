"""Credentials are encrypted at rest, and keys can be rotated."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db

from connectors.fields import _fernet
from connectors.models import Connection

pytestmark = pytest.mark.django_db


def stored(pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials FROM connectors_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_credentials_never_reach_the_database_in_clear():
    connection = Connection.objects.create(
        name="QBO", platform="csv", credentials={"refresh_token": "rt-SECRET"}
    )
    assert "rt-SECRET" not in stored(connection.pk)
    assert Connection.objects.get(pk=connection.pk).credentials == {"refresh_token": "rt-SECRET"}


def test_old_key_still_decrypts_after_a_new_key_is_added(settings):
    old_key = settings.ENCRYPTION_KEYS[0]
    connection = Connection.objects.create(name="Xero", platform="csv", credentials={"token": "t1"})
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old_key]
    _fernet.cache_clear()
    assert Connection.objects.get(pk=connection.pk).credentials == {"token": "t1"}


def test_rotation_command_reencrypts_with_the_newest_key(settings):
    from django.core.management import call_command

    old_key = settings.ENCRYPTION_KEYS[0]
    connection = Connection.objects.create(name="Stripe", platform="csv", credentials={"key": "sk"})
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, old_key]
    _fernet.cache_clear()
    call_command("rotate_encryption_keys")
    settings.ENCRYPTION_KEYS = [new_key]
    _fernet.cache_clear()
    assert Connection.objects.get(pk=connection.pk).credentials == {"key": "sk"}


def test_unregistered_platform_is_refused():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not a registered platform"):
        Connection(name="Nope", platform="nope").full_clean()
