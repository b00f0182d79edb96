"""Show how Ledgerlink reads one platform record: raw JSON in, canonical record out (no HTTP, no writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.base import ConnectorError, ValidationError, record_to_dict
from connectors.registry import PLATFORMS, UnknownPlatformError, connector_class

OBJECTS = ("invoice", "payment", "credit_note", "customer", "payout")
# keys of a platform's response envelope that are not the record (QuickBooks "time", Xero's header)
ENVELOPE_KEYS = {"time", "Id", "Status", "ProviderName", "DateTimeUTC", "pagination", "Warnings"}


def unwrap(payload: Any) -> Any:
    """The record inside a single-record envelope ({"Invoice": {...}, "time": ...} or {"Invoices": [x]})."""
    if not isinstance(payload, dict):
        return payload
    rest = [key for key in payload if key not in ENVELOPE_KEYS]
    if len(rest) != 1 or not rest[0][:1].isupper():
        return payload
    inner = payload[rest[0]]
    if isinstance(inner, dict):
        return inner
    if isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], dict):
        return inner[0]
    return payload


class Command(BaseCommand):
    help = (
        "Print the canonical record Ledgerlink reads from one raw platform record, e.g. "
        "`connector_preview stripe invoice in_123.json`. The file holds one record as the platform's "
        "API returns it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("platform", help=f"one of: {', '.join(sorted(PLATFORMS))}")
        parser.add_argument("object", help=f"one of: {', '.join(OBJECTS)}")
        parser.add_argument("file", help="JSON file holding one record ('-' reads standard input)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            connector = connector_class(options["platform"])
        except UnknownPlatformError as exc:
            raise CommandError(str(exc.args[0])) from None
        object_type = options["object"].replace("-", "_")
        if not connector.supports(object_type, "read"):
            readable = sorted(name for name in connector.capabilities if connector.supports(name, "read"))
            raise CommandError(
                f"{connector.label} does not read {object_type!r}; it reads: {', '.join(readable)}"
            )
        path = options["file"]
        try:
            text = Path(path).read_text(encoding="utf-8-sig") if path != "-" else self.stdin_text()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{path} is not JSON: {exc}") from None
        if not isinstance(unwrap(payload), dict):
            raise CommandError(f"{path} must hold one JSON object (one {object_type})")
        try:
            record = connector.parse(object_type, unwrap(payload))
        except ValidationError as exc:
            where = f" (field {exc.field!r}, value {exc.value!r})" if exc.field else ""
            raise CommandError(f"cannot read this {object_type}: {exc}{where}") from None
        except ConnectorError as exc:
            raise CommandError(f"cannot read this {object_type}: {exc}") from None
        self.stdout.write(json.dumps(record_to_dict(record), indent=2, ensure_ascii=False))

    def stdin_text(self) -> str:
        import sys

        return sys.stdin.read()
