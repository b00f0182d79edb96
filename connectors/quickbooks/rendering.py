"""Canonical records -> the exact JSON body QuickBooks Online takes for a create. Pure.

DocNumber and PaymentRefNum hold at most 21 characters; a longer reference is shortened deterministically
(`short_reference`) so that the same reference always gives the same value and a lookup after a crash
finds the document. Amounts go out as JSON numbers, refused if a float could not carry them exactly.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from connectors.base import (
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    PushContext,
    ValidationError,
)
from connectors.money import currency_exponent

REFERENCE_MAX = 21  # DocNumber and PaymentRefNum


def short_reference(reference: str) -> str:
    """A reference that fits DocNumber/PaymentRefNum (21 characters), the same every time."""
    if len(reference) <= REFERENCE_MAX:
        return reference
    digest = hashlib.sha256(reference.encode()).hexdigest()[:10]
    return f"{reference[: REFERENCE_MAX - 11]}~{digest}"


def number(value: Decimal, *, field: str) -> int | float:
    """A Decimal as the JSON number QuickBooks reads, refusing any value a float would change."""
    if value == value.to_integral_value() and abs(value) < 2**53:
        return float(value) if value.as_tuple().exponent < 0 else int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        raise ValidationError(f"{field} {value} cannot be sent exactly", field=field, value=str(value))
    return as_float


def _ref(value: str) -> dict[str, str]:
    return {"value": value}


def _require(value: str, field: str) -> str:
    if not value:
        raise ValidationError(f"{field} is required (not mapped)", field=field, value=value)
    return value


def render_lines(lines: tuple[LineRecord, ...], context: PushContext, currency: str) -> list[dict]:
    rendered = []
    exponent = Decimal(1).scaleb(-currency_exponent(currency))
    for index, line in enumerate(lines):
        mapped = context.lines[index] if index < len(context.lines) else {}
        item = _require(mapped.get("item", ""), f"lines[{index}].item")
        quantity, unit_price = line.quantity, line.unit_price
        if (quantity * unit_price).quantize(exponent) != line.subtotal:
            # QuickBooks insists on Amount == Qty x UnitPrice; a line discounted in the source is sent
            # as one unit at its net amount.
            quantity, unit_price = Decimal(1), line.subtotal
        detail: dict[str, Any] = {
            "ItemRef": _ref(item),
            "Qty": number(quantity, field=f"lines[{index}].quantity"),
            "UnitPrice": number(unit_price, field=f"lines[{index}].unit_price"),
        }
        if mapped.get("tax_code"):
            detail["TaxCodeRef"] = _ref(mapped["tax_code"])
        entry: dict[str, Any] = {
            "LineNum": index + 1,
            "Amount": number(line.subtotal, field=f"lines[{index}].subtotal"),
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": detail,
        }
        if line.description:
            entry["Description"] = line.description
        rendered.append(entry)
    return rendered


def _sales_document(record: InvoiceRecord | CreditNoteRecord, context: PushContext) -> dict[str, Any]:
    body: dict[str, Any] = {
        "DocNumber": short_reference(context.reference or context.number or record.number),
        "TxnDate": record.issue_date.isoformat(),
        "CustomerRef": _ref(_require(context.customer_id, "customer_id")),
        "CurrencyRef": _ref(record.currency),
        "Line": render_lines(record.lines, context, record.currency),
    }
    if record.memo:
        body["PrivateNote"] = record.memo
    return body


def render_invoice(record: InvoiceRecord, context: PushContext) -> dict[str, Any]:
    body = _sales_document(record, context)
    if record.due_date:
        body["DueDate"] = record.due_date.isoformat()
    return body


def render_credit_memo(record: CreditNoteRecord, context: PushContext) -> dict[str, Any]:
    body = _sales_document(record, context)
    original = record.original_invoice_number and context.invoice_ids.get(record.original_invoice_number)
    if original:
        body["InvoiceRef"] = _ref(original)
    return body


def render_payment(record: PaymentRecord, context: PushContext) -> dict[str, Any]:
    lines = []
    for index, allocation in enumerate(record.allocations):
        invoice_id = context.invoice_ids.get(allocation.invoice_number) or allocation.invoice_external_id
        _require(invoice_id, f"allocations[{index}].invoice_number")
        lines.append(
            {
                "Amount": number(allocation.amount, field=f"allocations[{index}].amount"),
                "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}],
            }
        )
    reference = context.reference or record.reference
    body: dict[str, Any] = {
        "CustomerRef": _ref(_require(context.customer_id, "customer_id")),
        "TotalAmt": number(record.amount, field="amount"),
        "TxnDate": record.transaction_date.isoformat(),
        "CurrencyRef": _ref(record.currency),
        "Line": lines,
    }
    if reference:
        body["PaymentRefNum"] = short_reference(reference)
    if context.deposit_account:
        body["DepositToAccountRef"] = _ref(context.deposit_account)
    note = record.memo or (reference if reference and len(reference) > REFERENCE_MAX else "")
    if note:
        body["PrivateNote"] = note
    return body


def render_customer(record: CustomerRecord, context: PushContext) -> dict[str, Any]:
    body: dict[str, Any] = {"DisplayName": _require(record.name, "name")}
    if record.email:
        body["PrimaryEmailAddr"] = {"Address": record.email}
    if record.currency:
        body["CurrencyRef"] = _ref(record.currency)
    if record.tax_number:
        body["PrimaryTaxIdentifier"] = record.tax_number
    return body
