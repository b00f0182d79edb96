"""Pure translation between Xero's records and canonical records (no HTTP here).

Xero's wire quirks, normalised at this edge:
- instants come as MS-JSON `/Date(1552327126117+0000)/` (milliseconds since the epoch in UTC; the suffix
  is the organisation's offset) or as ISO strings (`UpdatedDateUTCString` "2019-11-14 18:10:38+00:00",
  naive "2019-03-11T00:00:00" meaning UTC); dates (`Date`, `DueDate`) are the same shapes at midnight, or
  "2019-03-11" / `DateString` "2019-03-11 00:00:00";
- amounts are JSON numbers at the currency's places; unit amounts carry 4 places when read with unitdp=4;
- `LineAmountTypes` says what a line's `LineAmount` is: Exclusive (net: tax comes on top), Inclusive
  (gross: tax is inside it) or NoTax;
- only `ACCREC` invoices and `ACCRECCREDIT` credit notes are sales documents; bills are not ours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.base import (
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    PushContext,
    ValidationError,
)
from connectors.money import amount, currency_code, currency_exponent, decimal_value, price

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/$")
ZERO = Decimal(0)

SALES_INVOICE = "ACCREC"
SALES_CREDIT_NOTE = "ACCRECCREDIT"
SALES_PAYMENT = "ACCRECPAYMENT"
DRAFT_STATUSES = frozenset({"DRAFT", "SUBMITTED"})
_FINAL_STATUSES = {"VOIDED": "void", "DELETED": "deleted"}
PAYMENT_STATUSES = {"AUTHORISED": "completed", "DELETED": "void"}
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")


# --- values -------------------------------------------------------------------------------------------
def _ms_date(text: str, *, field: str, raw: Any) -> tuple[datetime, timedelta] | None:
    match = _MS_DATE.match(text)
    if not match:
        return None
    millis, sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours or 0), minutes=int(minutes or 0)) * (-1 if sign == "-" else 1)
    try:
        return EPOCH + timedelta(milliseconds=int(millis)), offset
    except OverflowError:
        raise ValidationError(f"{field} {raw!r} is out of range", field=field, value=raw) from None


def _iso(text: str, *, field: str, raw: Any) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field} {raw!r} is not a Xero date", field=field, value=raw) from None


def xero_datetime(raw: Any, *, field: str) -> datetime:
    """A Xero instant as an aware UTC datetime (MS-JSON or ISO; an ISO string without offset is UTC)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(f"{field} {raw!r} is not a Xero date", field=field, value=raw)
    text = raw.strip()
    found = _ms_date(text, field=field, raw=raw)
    if found:
        return found[0]
    value = _iso(text, field=field, raw=raw)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def xero_date(raw: Any, *, field: str) -> date:
    """A Xero date: the calendar day the organisation sees (MS-JSON shifted by its offset, or ISO)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(f"{field} {raw!r} is not a Xero date", field=field, value=raw)
    text = raw.strip()
    found = _ms_date(text, field=field, raw=raw)
    if found:
        instant, offset = found
        return (instant + offset).date()
    return _iso(text, field=field, raw=raw).date()


def version_of(raw: Mapping[str, Any]) -> str:
    """The record's UpdatedDateUTC as ISO text: Xero's only version token (see XeroConnector.update)."""
    value = raw.get("UpdatedDateUTC") or raw.get("UpdatedDateUTCString")
    if not value:
        return ""
    try:
        return xero_datetime(value, field="UpdatedDateUTC").isoformat()
    except ValidationError:
        return str(value)


def same_version(current: str, expected: str) -> bool:
    """Versions compare as instants, whichever Xero shape (MS-JSON or ISO) each was kept in."""
    try:
        return xero_datetime(current, field="UpdatedDateUTC") == xero_datetime(
            expected, field="UpdatedDateUTC"
        )
    except ValidationError:
        return current == expected


def updated_at(raw: Mapping[str, Any]) -> datetime | None:
    value = raw.get("UpdatedDateUTC") or raw.get("UpdatedDateUTCString")
    try:
        return xero_datetime(value, field="UpdatedDateUTC") if value else None
    except ValidationError:
        return None


def _date_field(raw: Mapping[str, Any], key: str, *, required: bool) -> date | None:
    """`Date` / `DueDate`, falling back on their `...String` twins."""
    value = raw.get(key) or raw.get(f"{key}String")
    if not value:
        if required:
            raise ValidationError(f"{key} is missing", field=key, value=value)
        return None
    return xero_date(value, field=key)


def _money(
    raw: Mapping[str, Any], key: str, currency: str, *, prefix: str = "", default: Any = None
) -> Decimal:
    value = raw.get(key, default)
    if value is None:
        raise ValidationError(f"{prefix}{key} is missing", field=f"{prefix}{key}", value=None)
    return amount(value, currency, field=f"{prefix}{key}")


def _text(raw: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{key} is missing", field=key, value=value)
        return ""
    if not isinstance(value, str | int):
        raise ValidationError(f"{key} {value!r} is not text", field=key, value=value)
    return str(value)


def _mapping(raw: Any, *, field: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValidationError(f"{field} is missing or not an object", field=field, value=raw)
    return raw


def _expect_type(raw: Mapping[str, Any], key: str, expected: str) -> None:
    value = raw.get(key)
    if value is not None and value != expected:
        raise ValidationError(f"{key} {value!r} is not a sales document ({expected})", field=key, value=value)


def _round(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-currency_exponent(currency)))


# --- Xero -> canonical --------------------------------------------------------------------------------
def parse_customer(raw: Any, *, prefix: str = "") -> CustomerRecord:
    contact = _mapping(raw, field=prefix.rstrip(".") or "Contact")
    name = contact.get("Name")
    if not isinstance(name, str) or not name.strip():
        if not contact.get("ContactID"):
            raise ValidationError(f"{prefix}Name is missing", field=f"{prefix}Name", value=name)
        name = ""
    currency = contact.get("DefaultCurrency")
    return CustomerRecord(
        name=name.strip(),
        email=str(contact.get("EmailAddress") or ""),
        tax_number=str(contact.get("TaxNumber") or ""),
        external_id=str(contact.get("ContactID") or ""),
        currency=currency_code(currency, field=f"{prefix}DefaultCurrency") if currency else "",
    )


def _line_amount_types(raw: Mapping[str, Any]) -> str:
    value = raw.get("LineAmountTypes") or "Exclusive"  # Xero's default when the element is absent
    if value not in LINE_AMOUNT_TYPES:
        raise ValidationError(
            f"LineAmountTypes {value!r} is not one of {LINE_AMOUNT_TYPES}",
            field="LineAmountTypes",
            value=value,
        )
    return value


def _unit_price(value: Decimal, currency: str) -> Decimal:
    """A computed unit price: the currency's places when exact, else Xero's 4 unit places."""
    exact = _round(value, currency)
    return exact if exact == value else value.quantize(Decimal("0.0001"))


def parse_line(raw: Any, index: int, currency: str, amount_types: str) -> LineRecord:
    prefix = f"LineItems[{index}]."
    line = _mapping(raw, field=f"LineItems[{index}]")
    line_amount = _money(line, "LineAmount", currency, prefix=prefix, default=0)
    tax = ZERO if amount_types == "NoTax" else _money(line, "TaxAmount", currency, prefix=prefix, default=0)
    if amount_types == "Inclusive":
        subtotal, total = line_amount - tax, line_amount
    else:
        subtotal, total = line_amount, line_amount + tax
    quantity_raw = line.get("Quantity")
    quantity = (
        decimal_value(quantity_raw, field=f"{prefix}Quantity") if quantity_raw is not None else Decimal(1)
    )
    unit_raw = line.get("UnitAmount")
    if unit_raw is None:
        unit = _unit_price(subtotal / quantity, currency) if quantity else subtotal
    else:
        unit = price(unit_raw, currency, field=f"{prefix}UnitAmount")
        if amount_types == "Inclusive" and line_amount:
            unit = _unit_price(unit * subtotal / line_amount, currency)  # the tax share taken out
    return LineRecord(
        description=str(line.get("Description") or ""),
        quantity=quantity,
        unit_price=unit,
        subtotal=subtotal,
        tax_amount=tax,
        total=total,
        item_code=str(line.get("ItemCode") or ""),
        line_number=index + 1,
    )


def _lines(raw: Mapping[str, Any], currency: str) -> tuple[LineRecord, ...]:
    items = raw.get("LineItems") or []
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ValidationError("LineItems is not a list", field="LineItems", value=items)
    amount_types = _line_amount_types(raw)
    return tuple(parse_line(item, index, currency, amount_types) for index, item in enumerate(items))


def parse_invoice(raw: Any) -> InvoiceRecord:
    invoice = _mapping(raw, field="Invoice")
    _expect_type(invoice, "Type", SALES_INVOICE)
    currency = currency_code(invoice.get("CurrencyCode"), field="CurrencyCode")
    total = _money(invoice, "Total", currency)
    paid = _money(invoice, "AmountPaid", currency, default=0)
    credited = _money(invoice, "AmountCredited", currency, default=0)
    due = _money(invoice, "AmountDue", currency, default=total - paid - credited)
    status = _text(invoice, "Status", required=True)
    if status in DRAFT_STATUSES:
        canonical = "draft"
    elif status == "AUTHORISED":
        canonical = "partially_paid" if (paid or credited) and due > 0 else "open"
    elif status == "PAID":
        canonical = "paid"
    elif status in _FINAL_STATUSES:
        canonical = _FINAL_STATUSES[status]
    else:
        raise ValidationError(f"Status {status!r} is not a Xero invoice status", field="Status", value=status)
    return InvoiceRecord(
        external_id=_text(invoice, "InvoiceID", required=True),
        number=_text(invoice, "InvoiceNumber"),
        customer=parse_customer(invoice.get("Contact"), prefix="Contact."),
        issue_date=_date_field(invoice, "Date", required=True),
        currency=currency,
        status=canonical,
        lines=_lines(invoice, currency),
        subtotal=_money(invoice, "SubTotal", currency),
        tax_total=_money(invoice, "TotalTax", currency),
        total=total,
        amount_paid=paid,
        amount_due=due,
        due_date=_date_field(invoice, "DueDate", required=False),
        memo=_text(invoice, "Reference"),
        raw=raw,
    )


def parse_allocation(raw: Any, index: int, currency: str) -> AllocationRecord:
    prefix = f"Allocations[{index}]."
    allocation = _mapping(raw, field=f"Allocations[{index}]")
    invoice = allocation.get("Invoice") or {}
    value = allocation.get("Date")
    return AllocationRecord(
        invoice_number=str(invoice.get("InvoiceNumber") or ""),
        amount=_money(allocation, "Amount", currency, prefix=prefix),
        allocated_on=xero_date(value, field=f"{prefix}Date") if value else None,
        invoice_external_id=str(invoice.get("InvoiceID") or ""),
    )


def parse_credit_note(raw: Any) -> CreditNoteRecord:
    note = _mapping(raw, field="CreditNote")
    _expect_type(note, "Type", SALES_CREDIT_NOTE)
    currency = currency_code(note.get("CurrencyCode"), field="CurrencyCode")
    total = _money(note, "Total", currency)
    remaining = _money(note, "RemainingCredit", currency, default=total)
    status = _text(note, "Status", required=True)
    if status in DRAFT_STATUSES:
        canonical = "draft"
    elif status == "AUTHORISED":
        canonical = "open" if remaining >= total else ("partially_applied" if remaining > 0 else "applied")
    elif status == "PAID":
        canonical = "applied"
    elif status in _FINAL_STATUSES:
        canonical = _FINAL_STATUSES[status]
    else:
        raise ValidationError(
            f"Status {status!r} is not a Xero credit note status", field="Status", value=status
        )
    allocations = tuple(
        parse_allocation(item, index, currency)
        for index, item in enumerate(note.get("Allocations") or [])
        if not (isinstance(item, Mapping) and item.get("IsDeleted") is True)
    )
    return CreditNoteRecord(
        external_id=_text(note, "CreditNoteID", required=True),
        number=_text(note, "CreditNoteNumber"),
        customer=parse_customer(note.get("Contact"), prefix="Contact."),
        issue_date=_date_field(note, "Date", required=True),
        currency=currency,
        status=canonical,
        lines=_lines(note, currency),
        subtotal=_money(note, "SubTotal", currency),
        tax_total=_money(note, "TotalTax", currency),
        total=total,
        remaining_credit=remaining,
        allocations=allocations,
        memo=_text(note, "Reference"),
        raw=raw,
    )


def parse_payment(raw: Any) -> PaymentRecord:
    payment = _mapping(raw, field="Payment")
    _expect_type(payment, "PaymentType", SALES_PAYMENT)
    invoice = _mapping(payment.get("Invoice"), field="Invoice")
    currency = currency_code(invoice.get("CurrencyCode"), field="Invoice.CurrencyCode")
    status = _text(payment, "Status") or "AUTHORISED"
    if status not in PAYMENT_STATUSES:
        raise ValidationError(f"Status {status!r} is not a Xero payment status", field="Status", value=status)
    paid = _money(payment, "Amount", currency)
    when = _date_field(payment, "Date", required=True)
    allocations = ()
    if invoice.get("InvoiceID") or invoice.get("InvoiceNumber"):
        allocations = (
            AllocationRecord(
                invoice_number=str(invoice.get("InvoiceNumber") or ""),
                amount=paid,
                allocated_on=when,
                invoice_external_id=str(invoice.get("InvoiceID") or ""),
            ),
        )
    contact = invoice.get("Contact")
    return PaymentRecord(
        external_id=_text(payment, "PaymentID", required=True),
        reference=_text(payment, "Reference"),
        customer=parse_customer(contact, prefix="Invoice.Contact.") if contact else None,
        transaction_date=when,
        currency=currency,
        amount=paid,
        allocations=allocations,
        status=PAYMENT_STATUSES[status],
        raw=raw,
    )


# --- canonical -> Xero --------------------------------------------------------------------------------
def number(value: Decimal) -> int | float:
    """A Decimal as the JSON number Xero reads (exact: amounts have far fewer than 15 digits)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _render_lines(lines: Sequence[LineRecord], context: PushContext, currency: str) -> list[dict[str, Any]]:
    rendered = []
    for index, line in enumerate(lines):
        mapped = context.lines[index] if index < len(context.lines) else {}
        item: dict[str, Any] = {}
        if line.description:
            item["Description"] = line.description
        item["Quantity"] = number(line.quantity)
        # Xero recomputes LineAmount from Quantity x UnitAmount; when they disagree (a discount, a
        # rounded total) it is given the line amount alone and works the unit amount out itself.
        if _round(line.quantity * line.unit_price, currency) == line.subtotal:
            item["UnitAmount"] = number(line.unit_price)
        item["LineAmount"] = number(line.subtotal)
        item["TaxAmount"] = number(line.tax_amount)
        if mapped.get("account"):
            item["AccountCode"] = mapped["account"]
        if mapped.get("tax_code"):
            item["TaxType"] = mapped["tax_code"]
        if mapped.get("item"):
            item["ItemCode"] = mapped["item"]
        rendered.append(item)
    return rendered


def _document_status(status: str, *, kind: str) -> str:
    if status == "draft":
        return "DRAFT"
    if status in ("void", "deleted"):
        raise ValidationError(f"a {status} {kind} cannot be created in Xero", field="status", value=status)
    return "AUTHORISED"  # payments and credits follow as their own records


def _contact_ref(record: InvoiceRecord | CreditNoteRecord, context: PushContext) -> dict[str, str]:
    if context.customer_id:
        return {"ContactID": context.customer_id}
    if record.customer.name:
        return {"Name": record.customer.name}  # Xero finds the contact by name or creates it
    raise ValidationError("the customer has no Xero contact and no name", field="customer_id", value="")


def render_invoice(record: InvoiceRecord, context: PushContext) -> dict[str, Any]:
    payload: dict[str, Any] = {"Type": SALES_INVOICE, "Contact": _contact_ref(record, context)}
    if context.number:
        payload["InvoiceNumber"] = context.number
    reference = context.reference or record.memo
    if reference:
        payload["Reference"] = reference
    payload["Date"] = record.issue_date.isoformat()
    if record.due_date:
        payload["DueDate"] = record.due_date.isoformat()
    payload["CurrencyCode"] = record.currency
    payload["LineAmountTypes"] = "Exclusive"
    payload["Status"] = _document_status(record.status, kind="invoice")
    payload["LineItems"] = _render_lines(record.lines, context, record.currency)
    return payload


def render_credit_note(record: CreditNoteRecord, context: PushContext) -> dict[str, Any]:
    payload: dict[str, Any] = {"Type": SALES_CREDIT_NOTE, "Contact": _contact_ref(record, context)}
    if context.number:
        payload["CreditNoteNumber"] = context.number
    reference = context.reference or record.memo
    if reference:
        payload["Reference"] = reference
    payload["Date"] = record.issue_date.isoformat()
    payload["CurrencyCode"] = record.currency
    payload["LineAmountTypes"] = "Exclusive"
    payload["Status"] = _document_status(record.status, kind="credit note")
    payload["LineItems"] = _render_lines(record.lines, context, record.currency)
    return payload


def render_customer(record: CustomerRecord, context: PushContext) -> dict[str, Any]:
    if not record.name:
        raise ValidationError("a Xero contact needs a name", field="name", value=record.name)
    payload: dict[str, Any] = {"Name": record.name}
    if context.reference:
        payload["ContactNumber"] = context.reference  # found again by find_by_reference
    if record.email:
        payload["EmailAddress"] = record.email
    if record.tax_number:
        payload["TaxNumber"] = record.tax_number
    if record.currency:
        payload["DefaultCurrency"] = record.currency
    return payload


def _invoice_id(invoice_number: str, context: PushContext) -> str:
    invoice_id = context.invoice_ids.get(invoice_number)
    if not invoice_id:
        raise ValidationError(
            f"invoice {invoice_number!r} has no Xero invoice id", field="invoice_ids", value=invoice_number
        )
    return invoice_id


def render_payment(record: PaymentRecord, context: PushContext) -> dict[str, Any]:
    """{"Payments": [...]}: Xero takes one payment per invoice, so each allocation becomes one."""
    if not record.allocations:
        raise ValidationError(
            "a Xero payment must be applied to an invoice; this payment has no allocations",
            field="allocations",
            value=record.reference,
        )
    if not context.deposit_account:
        raise ValidationError(
            "no deposit account is mapped for Xero payments", field="deposit_account", value=""
        )
    reference = context.reference or record.reference
    payments = []
    for allocation in record.allocations:
        item: dict[str, Any] = {
            "Invoice": {"InvoiceID": _invoice_id(allocation.invoice_number, context)},
            "Account": {"Code": context.deposit_account},
            "Date": record.transaction_date.isoformat(),
            "Amount": number(allocation.amount),
        }
        if reference:
            item["Reference"] = reference
        payments.append(item)
    return {"Payments": payments}


def render_allocations(record: CreditNoteRecord, context: PushContext) -> dict[str, Any]:
    """{"Allocations": [...]} for PUT /CreditNotes/{id}/Allocations."""
    return {
        "Allocations": [
            {
                "Invoice": {"InvoiceID": _invoice_id(allocation.invoice_number, context)},
                "Amount": number(allocation.amount),
                "Date": (allocation.allocated_on or record.issue_date).isoformat(),
            }
            for allocation in record.allocations
        ]
    }
