"""What stops a reminder: the invoice settled or pending anywhere, no address, findings still open."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from reconciliation.models import ReconciliationException
from sync.models import Binding, Invoice, ObjectType, Payment, PaymentAllocation

OWED = (Invoice.Status.OPEN, Invoice.Status.PARTIALLY_PAID)
SETTLED = {"paid", "void", "deleted"}
PENDING_PAYMENT = {"pending", "processing"}
CHUNK = 500


def _system(connection: Any) -> str:
    """The platform and the connection name as finance staff know them: "Xero (acme-xero)"."""
    if connection is None:
        return "Ledgerlink"
    return f"{connection.platform_label} ({connection.name})"


def _is_zero(raw: Any) -> bool:
    try:
        return raw not in (None, "") and Decimal(str(raw)) <= 0
    except InvalidOperation:
        return False  # not a number: the snapshot does not tell


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def suppressions(invoices: list[Invoice]) -> dict[int, list[str]]:
    """Why each invoice must not be reminded about now (an empty list: it may be).

    A fixed number of queries whatever the number of invoices (per chunk of 500).
    """
    reasons: dict[int, list[str]] = {invoice.pk: [] for invoice in invoices}
    by_id = {invoice.pk: invoice for invoice in invoices}
    ids = list(by_id)
    for invoice in invoices:
        if invoice.status not in OWED or invoice.amount_due <= 0:
            reasons[invoice.pk].append(
                f"Ledgerlink shows it {invoice.status}, amount due {invoice.amount_due}"
            )
        if not invoice.customer.email:
            reasons[invoice.pk].append(f"customer {invoice.customer.name} has no email address")

    # Each copy of the invoice elsewhere, as last read from or written to that system.
    invoice_at: dict[tuple[int, str], int] = {}
    for chunk in _chunks(ids):
        bindings = Binding.objects.filter(object_type=ObjectType.INVOICE, object_id__in=chunk)
        for binding in bindings.select_related("connection"):
            invoice_at[(binding.connection_id, binding.external_id)] = binding.object_id
            snapshot, where = binding.snapshot or {}, _system(binding.connection)
            if binding.remote_deleted:
                reasons[binding.object_id].append(f"{where} shows it deleted")
            elif snapshot.get("status") in SETTLED:
                reasons[binding.object_id].append(f"{where} shows it {snapshot['status']}")
            elif _is_zero(snapshot.get("amount_due")):
                reasons[binding.object_id].append(f"{where} shows amount due {snapshot['amount_due']}")

    # Payments on their way: pending in Ledgerlink, or pending in any system's copy of a payment.
    for chunk in _chunks(ids):
        allocations = PaymentAllocation.objects.filter(invoice_id__in=chunk, payment__status="pending")
        for allocation in allocations.select_related("payment__source_connection"):
            payment = allocation.payment
            reasons[allocation.invoice_id].append(
                f"{_system(payment.source_connection)} shows payment {payment.reference} pending"
            )
    pending = Binding.objects.filter(object_type=ObjectType.PAYMENT, snapshot__status__in=PENDING_PAYMENT)
    for binding in pending.select_related("connection"):
        snapshot = binding.snapshot
        for allocation in snapshot.get("allocations") or []:
            if not isinstance(allocation, dict):
                continue
            invoice_id = allocation.get("invoice_id")
            if invoice_id not in reasons:
                invoice_id = invoice_at.get((binding.connection_id, str(allocation.get("external_id") or "")))
            if invoice_id in reasons:
                reference = snapshot.get("reference") or binding.external_number or binding.external_id
                reasons[invoice_id].append(
                    f"{_system(binding.connection)} shows payment {reference} {snapshot['status']}"
                )

    # Findings someone still has to settle.
    open_exceptions = ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES)
    for chunk in _chunks(ids):
        mismatches = open_exceptions.filter(
            kind=ReconciliationException.Kind.STATUS_MISMATCH,
            object_type=ObjectType.INVOICE,
            object_id__in=chunk,
        )
        for exception in mismatches:
            reasons[exception.object_id].append(f"open status exception #{exception.pk}: {exception.title}")
    unmatched = list(open_exceptions.filter(kind=ReconciliationException.Kind.UNMATCHED_PAYMENT))
    payment_ids = [e.object_id for e in unmatched if e.object_type == ObjectType.PAYMENT and e.object_id]
    payments = {
        row["pk"]: row
        for row in Payment.objects.filter(pk__in=payment_ids).values("pk", "customer_id", "currency")
    }
    for exception in unmatched:
        payment = payments.get(exception.object_id) if exception.object_type == ObjectType.PAYMENT else None
        customer_id = payment["customer_id"] if payment else None
        named = str((exception.details or {}).get("customer") or "").lower()
        currency = exception.currency or (payment["currency"] if payment else "")
        for invoice in invoices:
            customer = invoice.customer
            same = customer_id == customer.pk or (
                named and named in {customer.email.lower(), customer.name.lower()}
            )
            if same and currency == invoice.currency:
                reasons[invoice.pk].append(
                    f"open unmatched payment exception #{exception.pk} for this customer in {currency}: "
                    f"{exception.title}"
                )
    return reasons
