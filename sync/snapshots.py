"""Binding snapshots: a copy's values on one connection, in canonical terms.

A snapshot is what reconciliation compares with the canonical document: the values of the copy as last
read from the connection or written to it. `{}` means not known yet (only presence can be compared).
Money is a decimal string at the currency's minor unit ("120.00", JPY "1500"), dates are ISO
`YYYY-MM-DD`, statuses are the canonical values of the sync models' Status choices, and the customer is
the lowercased email, else the name. The shapes:

- invoice: number, currency, total, tax_total, amount_paid, amount_due, status, issue_date, due_date
  (or null), customer, exchange_rate (or null)
- payment: reference, currency, amount, status, transaction_date, customer, allocations: a list of
  {invoice_id (canonical invoice id or null), external_id (the invoice's id on that connection), amount}
- credit_note: number, currency, total, tax_total, remaining_credit, status, issue_date, customer

They are built from a canonical model instance (what was pushed) or from a connector's canonical record
(what was read). Builders are plain functions over attributes: they run once per row of a pulled page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.db import connections, router
from django.utils import timezone

from connectors.base import ConnectorError
from connectors.money import currency_exponent
from sync.models import Binding, Customer, ObjectType

Snapshot = dict[str, Any]
# the status a copy takes when it is deleted at the connection
GONE_STATUS = {ObjectType.INVOICE: "deleted", ObjectType.CREDIT_NOTE: "deleted", ObjectType.PAYMENT: "void"}


@lru_cache(maxsize=64)
def _quantum(currency: str) -> Decimal | None:
    try:
        return Decimal(1).scaleb(-currency_exponent(currency))
    except ConnectorError:
        return None  # not an ISO 4217 code: the amount is kept as it is, never guessed


def money(value: Decimal | int | float | str | None, currency: str) -> str | None:
    """A decimal string at the currency's minor unit (storage keeps 4 places for every currency)."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        value = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    quantum = _quantum(currency or "")
    if quantum is None:
        return format(value.normalize(), "f")
    return str(value.quantize(quantum))


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def customer_key(customer: Any) -> str | None:
    """A Customer or CustomerRecord as snapshots name it: the lowercased email, else the name."""
    if customer is None:
        return None
    email = (getattr(customer, "email", "") or "").strip()
    return email.lower() if email else (getattr(customer, "name", "") or None)


def _rate(value: Any) -> str | None:
    return None if value is None else format(Decimal(value).normalize(), "f")


# --- invoices -----------------------------------------------------------------------------------------
def invoice_snapshot(invoice: Any, *, number: str | None = None, customer: str | None = None) -> Snapshot:
    """An Invoice or an InvoiceRecord; `number` when the copy carries another (a destination's prefix),
    `customer` when the copy's customer is known as a canonical one (see `record_snapshot`)."""
    currency = invoice.currency
    return {
        "number": invoice.number if number is None else number,
        "currency": currency,
        "total": money(invoice.total, currency),
        "tax_total": money(invoice.tax_total, currency),
        "amount_paid": money(invoice.amount_paid, currency),
        "amount_due": money(invoice.amount_due, currency),
        "status": str(invoice.status),
        "issue_date": _day(invoice.issue_date),
        "due_date": _day(invoice.due_date),
        "customer": customer or customer_key(invoice.customer),
        "exchange_rate": _rate(getattr(invoice, "exchange_rate", None)),
    }


def credit_note_snapshot(note: Any, *, number: str | None = None, customer: str | None = None) -> Snapshot:
    """A CreditNote or a CreditNoteRecord (`number` and `customer` as for invoices)."""
    currency = note.currency
    return {
        "number": note.number if number is None else number,
        "currency": currency,
        "total": money(note.total, currency),
        "tax_total": money(note.tax_total, currency),
        "remaining_credit": money(note.remaining_credit, currency),
        "status": str(note.status),
        "issue_date": _day(note.issue_date),
        "customer": customer or customer_key(note.customer),
    }


# --- payments -----------------------------------------------------------------------------------------
def payment_snapshot(
    payment: Any,
    allocations: Sequence[tuple[int | None, str, Any]],
    *,
    reference: str | None = None,
    customer: str | None = None,
) -> Snapshot:
    """A Payment or a PaymentRecord, with its allocations as (canonical invoice id or None, the invoice's
    id on the connection, amount): resolving them needs bindings, which the caller has at hand."""
    currency = payment.currency
    return {
        "reference": payment.reference if reference is None else reference,
        "currency": currency,
        "amount": money(payment.amount, currency),
        "status": str(payment.status),
        "transaction_date": _day(payment.transaction_date),
        "customer": customer or customer_key(payment.customer),
        "allocations": [
            {"invoice_id": invoice_id, "external_id": external_id or "", "amount": money(amount, currency)}
            for invoice_id, external_id, amount in allocations
        ],
    }


def payment_model_snapshot(
    payment: Any, external_ids: Mapping[int, str], *, reference: str | None = None
) -> Snapshot:
    """A canonical Payment (allocations prefetched) as written to a connection whose invoice ids are
    `external_ids` (canonical invoice id -> id there)."""
    allocations = [
        (a.invoice_id, external_ids.get(a.invoice_id, ""), a.amount) for a in payment.allocations.all()
    ]
    return payment_snapshot(payment, allocations, reference=reference)


def payment_record_snapshot(
    record: Any, invoice_ids: Mapping[str, int], *, customer: str | None = None
) -> Snapshot:
    """A PaymentRecord read from a connection; `invoice_ids` maps the invoice ids there (the allocations'
    `invoice_external_id`) to canonical invoice ids."""
    allocations = [
        (
            invoice_ids.get(a.invoice_external_id) if a.invoice_external_id else None,
            a.invoice_external_id,
            a.amount,
        )
        for a in record.allocations
    ]
    return payment_snapshot(record, allocations, customer=customer)


# --- dispatch -----------------------------------------------------------------------------------------
def record_snapshot(
    object_type: str,
    record: Any,
    *,
    invoice_ids: Mapping[str, int] | None = None,
    customers: Mapping[str, str] | None = None,
) -> Snapshot:
    """The snapshot of a canonical record read from a connection (customers have none: `{}`).

    `customers` maps customer ids on the connection to the key of the canonical customer bound to them:
    a copy whose customer is ours then names it as the canonical customer does (a destination may hold
    the name without the email), so comparing customers compares who, not how they are spelt there."""
    found = None
    if customers and record.customer is not None:
        found = customers.get(record.customer.external_id)
    if object_type == ObjectType.INVOICE:
        return invoice_snapshot(record, customer=found)
    if object_type == ObjectType.CREDIT_NOTE:
        return credit_note_snapshot(record, customer=found)
    if object_type == ObjectType.PAYMENT:
        return payment_record_snapshot(record, invoice_ids or {}, customer=found)
    return {}


def customer_keys(connection_id: int, records: Sequence[Any]) -> dict[str, str]:
    """Customer ids on the connection -> key of the canonical customer bound to each: one query."""
    wanted = {
        r.customer.external_id for r in records if getattr(r, "customer", None) and r.customer.external_id
    }
    if not wanted:
        return {}
    rows = Binding.objects.filter(
        connection_id=connection_id, object_type=ObjectType.CUSTOMER, external_id__in=wanted
    ).values_list("external_id", "object_id")
    bound = dict(rows)
    people = Customer.objects.in_bulk(set(bound.values()))
    return {external_id: customer_key(people[pk]) for external_id, pk in bound.items() if pk in people}


def allocation_invoice_ids(connection_id: int, records: Sequence[Any]) -> dict[str, int]:
    """Canonical invoice ids of the invoices payment records name by their id on the connection: one query."""
    wanted = {
        a.invoice_external_id for r in records for a in getattr(r, "allocations", ()) if a.invoice_external_id
    }
    if not wanted:
        return {}
    return dict(
        Binding.objects.filter(
            connection_id=connection_id, object_type=ObjectType.INVOICE, external_id__in=wanted
        ).values_list("external_id", "object_id")
    )


def overlay(base: Snapshot, answer: Snapshot) -> Snapshot:
    """`base` (what was sent) with what the connection answered on top; a value the answer leaves out
    (None, or no allocations) keeps the one sent."""
    merged = dict(base)
    for key, value in answer.items():
        if value is None or (key == "allocations" and not value):
            merged.setdefault(key, value)
        else:
            merged[key] = value
    return merged


def gone(object_type: str, snapshot: Snapshot) -> Snapshot:
    """The snapshot of a copy deleted at the connection: what was known of it, with the deleted status
    (an unknown copy stays unknown)."""
    status = GONE_STATUS.get(object_type)  # type: ignore[call-overload]
    return {**snapshot, "status": status} if status and snapshot else dict(snapshot)


# --- writing ------------------------------------------------------------------------------------------
def snapshots_write(rows: Sequence[tuple[int, Snapshot]], *, at: Any = None) -> None:
    """Set snapshot and snapshot_at of bindings by pk with one `executemany` (nothing else changes: not
    the version, not the last-synced time, which say what was written, not what was read)."""
    if not rows:
        return
    at = at or timezone.now()
    using = router.db_for_write(Binding)
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = Binding._meta
    snapshot, snapshot_at = meta.get_field("snapshot"), meta.get_field("snapshot_at")
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {quote(snapshot.column)} = %s, "  # noqa: S608 - model names
        f"{quote(snapshot_at.column)} = %s WHERE {quote(meta.pk.column)} = %s"
    )
    stamp = snapshot_at.get_db_prep_save(at, connection)
    params = [(snapshot.get_db_prep_save(value, connection), stamp, pk) for pk, value in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


# --- what a push left at a destination ------------------------------------------------------------------
def answer_record(connector: Any, object_type: str, raw: Any) -> Any:
    """The destination's answer to a write as a canonical record; None when it is not one whole record
    the connector can read (a split payment, a list of allocations, a bare id)."""
    if not isinstance(raw, dict) or not raw or object_type not in GONE_STATUS:
        return None
    home = getattr(connector, "home_currency", "")
    try:
        if home:  # QuickBooks reads amounts without a currency in the company's home currency
            return type(connector).parse(object_type, raw, home_currency=home)
        return connector.parse(object_type, raw)
    except (ConnectorError, TypeError, ValueError, KeyError, AttributeError, ArithmeticError):
        return None


def pushed_snapshot(
    connector: Any, object_type: str, document: Any, context: Any, raw: Any, *, connection_id: int
) -> Snapshot | None:
    """The copy a push left: the canonical document as pushed (its number or reference as written there),
    overlaid with what the destination answered. None for customers, which have no snapshot."""
    number = (getattr(context, "number", "") or getattr(context, "reference", "")) or None
    invoice_ids: dict[str, int] = {}
    if object_type == ObjectType.INVOICE:
        base = invoice_snapshot(document, number=number)
    elif object_type == ObjectType.CREDIT_NOTE:
        base = credit_note_snapshot(document, number=number)
    elif object_type == ObjectType.PAYMENT:
        allocations = list(document.allocations.all())
        by_number = getattr(context, "invoice_ids", None) or {}
        external = {
            a.invoice_id: by_number[a.invoice.number] for a in allocations if a.invoice.number in by_number
        }
        missing = [a.invoice_id for a in allocations if a.invoice_id not in external]
        if missing:  # a void carries no context: the ids come from the invoices' bindings there
            external.update(
                Binding.objects.filter(
                    connection_id=connection_id, object_type=ObjectType.INVOICE, object_id__in=missing
                ).values_list("object_id", "external_id")
            )
        base = payment_model_snapshot(document, external, reference=getattr(context, "reference", "") or None)
        invoice_ids = {external_id: pk for pk, external_id in external.items()}
    else:
        return None
    record = answer_record(connector, object_type, raw)
    if record is None:
        return base
    sent_to = getattr(context, "customer_id", "")
    customers = {sent_to: base["customer"]} if sent_to else customer_keys(connection_id, [record])
    return overlay(base, record_snapshot(object_type, record, invoice_ids=invoice_ids, customers=customers))
