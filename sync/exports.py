"""Canonical invoices written back out in the CSV import layout, normalised.

ISO dates, '.' decimals at the currency's minor unit, ISO currency codes: a file this writes imports back
unchanged (`csv_import` of an export creates nothing new).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO, Any

from connectors.csv.reader import KNOWN_COLUMNS
from sync.models import Binding, Invoice, ObjectType
from sync.money import money_str, number_str, price_str

INVOICE_COLUMNS = [column for column in KNOWN_COLUMNS["invoices"] if column != "item_code"] + ["item_code"]


def invoice_rows(invoices: Any) -> Iterator[dict[str, str]]:
    for invoice in invoices:
        currency = invoice.currency
        source_ids = {}
        raw = invoice.raw_payload
        if isinstance(raw, list) and raw and isinstance(raw[0], dict):
            source_ids["external_id"] = raw[0].get("external_id", "")
        for line in invoice.lines.all():
            yield {
                "invoice_number": invoice.number,
                "customer_name": invoice.customer.name,
                "customer_email": invoice.customer.email,
                "issue_date": invoice.issue_date.isoformat(),
                "due_date": invoice.due_date.isoformat() if invoice.due_date else "",
                "currency": currency,
                "description": line.description,
                "quantity": number_str(line.quantity),
                "unit_price": price_str(line.unit_price, currency),
                "tax_rate": number_str(line.tax_rate),
                "total": money_str(invoice.total, currency),
                "status": "open" if invoice.status == Invoice.Status.PARTIALLY_PAID else invoice.status,
                "amount_paid": money_str(invoice.amount_paid, currency),
                "external_id": source_ids.get("external_id", ""),
                "item_code": line.item_code,
            }


def invoices_export(*, out: IO[str], connection: Any = None, chunk_size: int = 2000) -> int:
    """Write invoices (all, or those bound to `connection`) to `out`. Returns the number of invoices."""
    invoices = (
        Invoice.objects.select_related("customer")
        .prefetch_related("lines")
        .order_by("issue_date", "number", "pk")
    )
    if connection is not None:
        bound = Binding.objects.filter(connection=connection, object_type=ObjectType.INVOICE).values(
            "object_id"
        )
        invoices = invoices.filter(pk__in=bound)
    writer = csv.DictWriter(out, fieldnames=INVOICE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    numbers: set[str] = set()
    for row in invoice_rows(invoices.iterator(chunk_size=chunk_size)):
        writer.writerow(row)
        numbers.add(row["invoice_number"])
    return len(numbers)
