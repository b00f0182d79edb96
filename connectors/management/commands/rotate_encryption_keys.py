"""Re-encrypt every stored secret with the newest key in ENCRYPTION_KEYS (then the old keys can go)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from connectors.models import Connection


class Command(BaseCommand):
    help = "Re-encrypt connection credentials with the newest ENCRYPTION_KEYS entry."

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            for connection in Connection.objects.select_for_update().only("pk", "credentials"):
                # Reading decrypts with any key; saving encrypts with the newest.
                Connection.objects.filter(pk=connection.pk).update(credentials=connection.credentials)
                count += 1
        self.stdout.write(f"re-encrypted the credentials of {count} connection(s)")
