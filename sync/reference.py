"""A destination's reference data (accounts, tax codes, items, customers), pulled to offer as mapping
choices and to check mappings against before anything is sent."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from connectors.base import CustomerRecord, PermanentError
from sync.models import ReferenceData

Kind = ReferenceData.Kind


def _customers(connector: Any) -> list[dict[str, Any]]:
    """Every customer the destination lists, page after page to the last one: a partial list would mark
    the customers left unread inactive and stop mappings from finding them. A connector that hands back
    a page token it gave before would loop for ever; that fails loudly and nothing is saved."""
    rows: list[dict[str, Any]] = []
    page: str | None = None
    tokens: set[str] = set()
    while True:
        answer = connector.list_changes("customer", since=None, page=page)
        for change in answer.changes:
            record = change.record
            if change.deleted or not isinstance(record, CustomerRecord):
                continue
            rows.append(
                {
                    "code": change.external_id,
                    "name": record.name,
                    "email": record.email,
                    "tax_number": record.tax_number,
                }
            )
        page = answer.next_page
        if not page:
            return rows
        if page in tokens:
            raise PermanentError(
                f"the customer list repeats its page token {page!r} after {len(tokens) + 1} pages "
                f"({len(rows)} customers read); the reference data was left as it was"
            )
        tokens.add(page)


def reference_data_refresh(connection: Any) -> dict[str, int]:
    """Fetch every kind the destination offers; rows no longer there are kept but marked inactive.
    Returns the number of active rows per kind."""
    connector = connection.connector()
    fetched: dict[str, list[dict[str, Any]]] = {}
    for kind, name in connector.reference_kinds.items():
        fetched[kind] = [
            {
                "code": str(row.get(connector.reference_key) or ""),
                "name": str(row.get("name") or ""),
                "active": row.get("active", True) is not False
                and row.get("status", "ACTIVE") in ("ACTIVE", ""),
                "extra": row,
            }
            for row in connector.reference_data(name)
        ]
    if connector.supports("customer", "list_changes"):
        fetched[Kind.CUSTOMER] = _customers(connector)
    counts = {}
    with transaction.atomic():
        for kind, rows in fetched.items():
            seen = set()
            for row in rows:
                if not row["code"] or row["code"] in seen:
                    continue
                seen.add(row["code"])
                ReferenceData.objects.update_or_create(
                    connection=connection,
                    kind=kind,
                    code=row["code"][:255],
                    defaults={
                        "name": row.get("name", "")[:255],
                        "email": row.get("email", "")[:255],
                        "tax_number": row.get("tax_number", "")[:64],
                        "active": row.get("active", True),
                        "extra": row.get("extra", {}),
                    },
                )
            ReferenceData.objects.filter(connection=connection, kind=kind).exclude(code__in=seen).update(
                active=False
            )
            counts[kind] = len(seen)
    return counts
