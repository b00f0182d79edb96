"""Canonical documents (the hub's rows) as the canonical records connectors render."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.base import (
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
)
from sync.models import (
    CreditNote,
    Customer,
    Invoice,
    Payment,
)


# --- canonical documents -> canonical records ---------------------------------------------------------
def customer_record(customer: Customer) -> CustomerRecord:
    return CustomerRecord(
        name=customer.name,
        email=customer.email,
        tax_number=customer.tax_number,
        external_id=str(customer.pk),
        currency=customer.currency,
    )


def _lines(lines: Iterable[Any]) -> tuple[LineRecord, ...]:
    return tuple(
        LineRecord(
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            subtotal=line.subtotal,
            tax_amount=line.tax_amount,
            total=line.total,
            tax_rate=line.tax_rate,
            item_code=line.item_code,
            line_number=line.line_number,
        )
        for line in lines
    )


def _allocations(allocations: Iterable[Any]) -> tuple[AllocationRecord, ...]:
    return tuple(
        AllocationRecord(invoice_number=a.invoice.number, amount=a.amount, allocated_on=a.allocated_on)
        for a in allocations
    )


def invoice_record(invoice: Invoice) -> InvoiceRecord:
    return InvoiceRecord(
        external_id=str(invoice.pk),
        number=invoice.number,
        customer=customer_record(invoice.customer),
        issue_date=invoice.issue_date,
        currency=invoice.currency,
        status=invoice.status,
        lines=_lines(invoice.lines.all()),
        subtotal=invoice.subtotal,
        tax_total=invoice.tax_total,
        total=invoice.total,
        amount_paid=invoice.amount_paid,
        amount_due=invoice.amount_due,
        due_date=invoice.due_date,
        memo=invoice.memo,
    )


def credit_note_record(note: CreditNote) -> CreditNoteRecord:
    return CreditNoteRecord(
        external_id=str(note.pk),
        number=note.number,
        customer=customer_record(note.customer),
        issue_date=note.issue_date,
        currency=note.currency,
        status=note.status,
        lines=_lines(note.lines.all()),
        subtotal=note.subtotal,
        tax_total=note.tax_total,
        total=note.total,
        remaining_credit=note.remaining_credit,
        original_invoice_number=note.original_invoice.number if note.original_invoice else "",
        allocations=_allocations(note.allocations.all()),
        memo=note.memo,
    )


def payment_record(payment: Payment) -> PaymentRecord:
    return PaymentRecord(
        external_id=str(payment.pk),
        reference=payment.reference,
        customer=customer_record(payment.customer) if payment.customer else None,
        transaction_date=payment.transaction_date,
        currency=payment.currency,
        amount=payment.amount,
        allocations=_allocations(payment.allocations.all()),
        method=payment.method,
        status=payment.status,
        processor_transaction_id=payment.processor_transaction_id,
        fee=payment.fee,
        payout_id=payment.payout_id,
        memo=payment.memo,
    )


def customer_number(customer: Customer) -> str:
    """The customer's deterministic reference in a destination (Xero ContactNumber)."""
    return f"LL-C{customer.pk}"


def document_label(object_type: str, document: Any) -> str:
    name = object_type.replace("_", " ").capitalize()
    return f"{name} {getattr(document, 'number', '') or getattr(document, 'reference', '') or document}"
