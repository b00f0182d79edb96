"""QuickBooks Online records -> canonical records. Pure: no HTTP, no database.

- QuickBooks has no status field on sales documents; it is derived. A void document has its amounts
  zeroed and "Voided" at the start of PrivateNote; otherwise the balance against the total says open,
  partially paid (applied) or paid (applied). A zero-total document that is not void owes nothing: paid.
- Line `Amount` is net of tax; tax is kept for the whole document (`TxnTaxDetail.TotalTax`). So that the
  lines add up to the document total, that tax is spread over the taxable lines in proportion to their
  amounts (largest remainder, to the currency's minor unit); lines with tax code "NON" carry none.
  Discount lines become negative lines; sub-total lines are dropped; group lines are flattened.
- The currency is `CurrencyRef`; a company without multicurrency may omit it, and then the connection's
  home currency (options["home_currency"]) is used. Neither: ValidationError.
- Deleted records (CDC `"status": "Deleted"`) carry only Id and MetaData: callers report them as deletions
  before parsing (`is_deleted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from connectors.base import (
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    ValidationError,
)
from connectors.money import amount, currency_code, currency_exponent, decimal_value, price

ZERO = Decimal(0)
VOID_MARK = "Voided"
NON_TAXABLE = "NON"


# --- small readers ----------------------------------------------------------------------------------------
def ref_value(raw: Any) -> str:
    return str(raw.get("value") or "") if isinstance(raw, dict) else ""


def ref_name(raw: Any) -> str:
    return str(raw.get("name") or "") if isinstance(raw, dict) else ""


def parse_date(raw: Any, *, field: str) -> date:
    try:
        return date.fromisoformat(str(raw)[:10])
    except (TypeError, ValueError):
        raise ValidationError(f"{field} {raw!r} is not a date (YYYY-MM-DD)", field=field, value=raw) from None


def optional_date(raw: Any, *, field: str) -> date | None:
    return parse_date(raw, field=field) if raw else None


def parse_timestamp(raw: Any) -> datetime | None:
    """MetaData times ("2015-07-24T10:35:08-07:00"); None when missing or unreadable."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def updated_at(raw: Mapping[str, Any]) -> datetime | None:
    meta = raw.get("MetaData")
    return parse_timestamp(meta.get("LastUpdatedTime")) if isinstance(meta, dict) else None


def is_deleted(raw: Mapping[str, Any]) -> bool:
    return str(raw.get("status") or "").lower() == "deleted"


def document_currency(raw: Mapping[str, Any], home_currency: str = "") -> str:
    code = ref_value(raw.get("CurrencyRef"))
    if code:
        return currency_code(code, field="CurrencyRef")
    if home_currency:
        return currency_code(home_currency, field="home_currency")
    raise ValidationError(
        "CurrencyRef is missing and the connection has no home_currency option",
        field="CurrencyRef",
        value=None,
    )


def _money(raw: Mapping[str, Any], key: str, currency: str, *, default: Any = None) -> Decimal:
    value = raw.get(key, default)
    return amount(value if value is not None else default, currency, field=key)


def _voided(total: Decimal, balance: Decimal, note: str) -> bool:
    return total == 0 and balance == 0 and note.strip().startswith(VOID_MARK)


def invoice_status(total: Decimal, balance: Decimal, note: str) -> str:
    if _voided(total, balance, note):
        return "void"
    if balance <= 0:
        return "paid"
    return "partially_paid" if balance < total else "open"


def credit_note_status(total: Decimal, remaining: Decimal, note: str) -> str:
    if _voided(total, remaining, note):
        return "void"
    if remaining <= 0:
        return "applied"
    return "partially_applied" if remaining < total else "open"


def raw_status(entity: str, raw: Mapping[str, Any]) -> str:
    """The canonical status of a raw document, for the answer to a write (no currency needed)."""
    if is_deleted(raw):
        return "deleted"
    note = str(raw.get("PrivateNote") or "")
    try:
        total = decimal_value(raw.get("TotalAmt", 0), field="TotalAmt")
        if entity == "Invoice":
            return invoice_status(total, decimal_value(raw.get("Balance", 0), field="Balance"), note)
        if entity == "CreditMemo":
            remaining = raw.get("RemainingCredit", raw.get("Balance", 0))
            return credit_note_status(total, decimal_value(remaining, field="RemainingCredit"), note)
        if entity == "Payment":
            return "void" if total == 0 and note.startswith(VOID_MARK) else "completed"
    except ValidationError:
        return ""
    return ""


# --- lines --------------------------------------------------------------------------------------------
def _flat_lines(lines: Any) -> list[dict[str, Any]]:
    if lines is None:
        return []
    if not isinstance(lines, list):
        raise ValidationError("Line is not a list", field="Line", value=lines)
    flat = []
    for line in lines:
        if not isinstance(line, dict):
            raise ValidationError("a Line entry is not an object", field="Line", value=line)
        if line.get("DetailType") == "GroupLineDetail":
            flat.extend(_flat_lines((line.get("GroupLineDetail") or {}).get("Line") or []))
        else:
            flat.append(line)
    return flat


def allocate(total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """Split `total` in proportion to `weights` at the currency's minor unit; the parts add up exactly."""
    if not weights:
        return []
    quantum = Decimal(1).scaleb(-currency_exponent(currency))
    weight_sum = sum(weights, ZERO)
    if weight_sum == 0:
        weights, weight_sum = [Decimal(1)] * len(weights), Decimal(len(weights))
    exact = [total * weight / weight_sum for weight in weights]
    parts = [share.quantize(quantum, rounding=ROUND_DOWN) for share in exact]
    steps = int((total - sum(parts, ZERO)) / quantum)
    order = sorted(range(len(parts)), key=lambda i: abs(exact[i] - parts[i]), reverse=True)
    for index in order[: abs(steps)]:
        parts[index] += quantum if steps > 0 else -quantum
    return parts


@dataclass
class _Draft:
    description: str
    quantity: Decimal
    unit_price: Decimal
    subtotal: Decimal
    item_code: str = ""
    tax_code: str = ""
    taxable: bool = False
    tax: Decimal = ZERO
    rate: Decimal | None = None


def _tax_lines(raw: Mapping[str, Any], currency: str) -> list[tuple[Decimal, Decimal | None, Decimal | None]]:
    """(tax, net amount taxed, percentage) of each `TxnTaxDetail.TaxLine`."""
    detail = raw.get("TxnTaxDetail") if isinstance(raw.get("TxnTaxDetail"), dict) else {}
    found = []
    for index, line in enumerate(detail.get("TaxLine") or []):
        where = f"TxnTaxDetail.TaxLine[{index}]"
        info = line.get("TaxLineDetail") or {}
        net, percent = info.get("NetAmountTaxable"), info.get("TaxPercent")
        found.append(
            (
                amount(line.get("Amount") or 0, currency, field=f"{where}.Amount"),
                None if net is None else amount(net, currency, field=f"{where}.NetAmountTaxable"),
                None if percent is None else decimal_value(percent, field=f"{where}.TaxPercent"),
            )
        )
    return found


def _spread_tax(drafts: list[_Draft], raw: Mapping[str, Any], currency: str, tax_total: Decimal) -> None:
    """Put the document's tax on its lines: each tax line on the lines of the tax code whose net amounts
    it taxed (matched by `NetAmountTaxable`), whatever is left in proportion over the other taxable lines.
    """
    tax_lines = _tax_lines(raw, currency)
    groups: dict[str, list[_Draft]] = {}
    for draft in drafts:
        if draft.taxable and draft.tax_code:
            groups.setdefault(draft.tax_code, []).append(draft)
    left, matched = tax_total, set()
    for tax, net, percent in tax_lines:
        group = next(
            (g for g in groups.values() if net is not None and sum(d.subtotal for d in g) == net), None
        )
        if group is None:
            continue
        for draft, share in zip(group, allocate(tax, [d.subtotal for d in group], currency), strict=True):
            draft.tax += share
            draft.rate = (draft.rate or ZERO) + percent if percent is not None else draft.rate
            matched.add(id(draft))
        left -= tax
    if not left:
        return
    positive = [d for d in drafts if d.subtotal > 0]
    pool = [d for d in positive if d.taxable and id(d) not in matched] or [d for d in positive if d.taxable]
    pool = pool or positive
    percents = {percent for _, _, percent in tax_lines if percent is not None}
    for draft, share in zip(pool, allocate(left, [d.subtotal for d in pool], currency), strict=True):
        draft.tax += share
        if draft.rate is None and len(percents) == 1:
            draft.rate = next(iter(percents))


def parse_lines(raw: Mapping[str, Any], currency: str, tax_total: Decimal) -> tuple[LineRecord, ...]:
    drafts = []
    for index, line in enumerate(_flat_lines(raw.get("Line"))):
        kind = line.get("DetailType", "")
        where = f"Line[{index}]"
        if kind == "SubTotalLineDetail" or (kind == "DescriptionOnly" and not line.get("Amount")):
            continue  # QuickBooks' own running sub-total, or a line of text
        subtotal = amount(line.get("Amount", 0), currency, field=f"{where}.Amount")
        if kind == "DiscountLineDetail":
            description = str(line.get("Description") or "Discount")
            drafts.append(_Draft(description, Decimal(1), -subtotal, -subtotal))
            continue
        detail = line.get(kind) if isinstance(line.get(kind), dict) else {}
        item = detail.get("ItemRef")
        quantity_raw, price_raw = detail.get("Qty"), detail.get("UnitPrice")
        quantity = None if quantity_raw is None else decimal_value(quantity_raw, field=f"{where}.{kind}.Qty")
        if price_raw is not None:
            unit_price = price(price_raw, currency, field=f"{where}.{kind}.UnitPrice")
        elif quantity:
            unit_price = price((subtotal / quantity).quantize(Decimal("0.0001")), currency, field=where)
        else:
            unit_price = subtotal
        tax_code = ref_value(detail.get("TaxCodeRef"))
        drafts.append(
            _Draft(
                description=str(line.get("Description") or ref_name(item) or ""),
                quantity=Decimal(1) if quantity is None else quantity,
                unit_price=unit_price,
                subtotal=subtotal,
                item_code=ref_name(item) or ref_value(item),
                tax_code=tax_code,
                taxable=tax_code.upper() != NON_TAXABLE,
            )
        )
    if tax_total:
        _spread_tax(drafts, raw, currency, tax_total)
    quantum = Decimal(1).scaleb(-currency_exponent(currency))
    return tuple(
        LineRecord(
            description=draft.description,
            quantity=draft.quantity,
            unit_price=draft.unit_price,
            subtotal=draft.subtotal,
            tax_amount=draft.tax.quantize(quantum),
            total=(draft.subtotal + draft.tax).quantize(quantum),
            tax_rate=draft.rate,
            item_code=draft.item_code,
            line_number=number,
        )
        for number, draft in enumerate(drafts, start=1)
    )


# --- parse --------------------------------------------------------------------------------------------
def _id(raw: Mapping[str, Any]) -> str:
    value = raw.get("Id")
    if value in (None, ""):
        raise ValidationError("Id is missing", field="Id", value=value)
    return str(value)


def _customer_ref(raw: Mapping[str, Any], currency: str) -> CustomerRecord:
    """The document's customer; in QuickBooks a customer deals in one currency, the document's."""
    ref = raw.get("CustomerRef")
    if not ref_value(ref):
        raise ValidationError("CustomerRef is missing", field="CustomerRef", value=ref)
    email = raw.get("BillEmail")
    return CustomerRecord(
        name=ref_name(ref),
        email=str(email.get("Address") or "") if isinstance(email, dict) else "",
        external_id=ref_value(ref),
        currency=currency,
    )


def _tax_total(raw: Mapping[str, Any], currency: str) -> Decimal:
    detail = raw.get("TxnTaxDetail")
    value = detail.get("TotalTax", 0) if isinstance(detail, dict) else 0
    return amount(value if value is not None else 0, currency, field="TxnTaxDetail.TotalTax")


def parse_invoice(raw: Mapping[str, Any], *, home_currency: str = "") -> InvoiceRecord:
    external_id = _id(raw)
    currency = document_currency(raw, home_currency)
    total = _money(raw, "TotalAmt", currency)
    balance = _money(raw, "Balance", currency, default=raw.get("TotalAmt"))
    tax_total = _tax_total(raw, currency)
    note = str(raw.get("PrivateNote") or "")
    return InvoiceRecord(
        external_id=external_id,
        number=str(raw.get("DocNumber") or external_id),
        customer=_customer_ref(raw, currency),
        issue_date=parse_date(raw.get("TxnDate"), field="TxnDate"),
        due_date=optional_date(raw.get("DueDate"), field="DueDate"),
        currency=currency,
        status=invoice_status(total, balance, note),
        lines=parse_lines(raw, currency, tax_total),
        subtotal=total - tax_total,
        tax_total=tax_total,
        total=total,
        amount_paid=total - balance,
        amount_due=balance,
        memo=note,
        raw=dict(raw),
    )


def parse_credit_memo(raw: Mapping[str, Any], *, home_currency: str = "") -> CreditNoteRecord:
    external_id = _id(raw)
    currency = document_currency(raw, home_currency)
    total = _money(raw, "TotalAmt", currency)
    remaining_key = "RemainingCredit" if raw.get("RemainingCredit") is not None else "Balance"
    remaining = _money(raw, remaining_key, currency, default=raw.get("TotalAmt"))
    tax_total = _tax_total(raw, currency)
    note = str(raw.get("PrivateNote") or "")
    return CreditNoteRecord(
        external_id=external_id,
        number=str(raw.get("DocNumber") or external_id),
        customer=_customer_ref(raw, currency),
        issue_date=parse_date(raw.get("TxnDate"), field="TxnDate"),
        currency=currency,
        status=credit_note_status(total, remaining, note),
        lines=parse_lines(raw, currency, tax_total),
        subtotal=total - tax_total,
        tax_total=tax_total,
        total=total,
        remaining_credit=remaining,
        original_invoice_number=ref_name(raw.get("InvoiceRef")),
        memo=note,
        raw=dict(raw),
    )


def linked_invoice_ids(raw: Mapping[str, Any]) -> list[str]:
    """Ids of the invoices a payment is applied to (its lines' LinkedTxn of type Invoice)."""
    found = []
    for line in raw.get("Line") or []:
        for link in (line.get("LinkedTxn") or []) if isinstance(line, dict) else []:
            if isinstance(link, dict) and link.get("TxnType") == "Invoice" and link.get("TxnId"):
                found.append(str(link["TxnId"]))
    return found


def parse_payment(
    raw: Mapping[str, Any], *, home_currency: str = "", invoice_numbers: Mapping[str, str] | None = None
) -> PaymentRecord:
    """`invoice_numbers` (invoice id -> DocNumber) fills the allocations' invoice numbers when known."""
    external_id = _id(raw)
    currency = document_currency(raw, home_currency)
    total = _money(raw, "TotalAmt", currency)
    issue = parse_date(raw.get("TxnDate"), field="TxnDate")
    note = str(raw.get("PrivateNote") or "")
    numbers = invoice_numbers or {}
    allocations = []
    for index, line in enumerate(raw.get("Line") or []):
        if not isinstance(line, dict):
            raise ValidationError("a Line entry is not an object", field="Line", value=line)
        links = [link for link in line.get("LinkedTxn") or [] if link.get("TxnType") == "Invoice"]
        for link in links:
            invoice_id = str(link.get("TxnId") or "")
            allocations.append(
                AllocationRecord(
                    invoice_number=numbers.get(invoice_id, ""),
                    amount=amount(line.get("Amount", 0), currency, field=f"Line[{index}].Amount"),
                    allocated_on=issue,
                    invoice_external_id=invoice_id,
                )
            )
    ref = raw.get("CustomerRef")
    card = (raw.get("CreditCardPayment") or {}).get("CreditChargeResponse") or {}
    return PaymentRecord(
        external_id=external_id,
        reference=str(raw.get("PaymentRefNum") or ""),
        customer=CustomerRecord(name=ref_name(ref), external_id=ref_value(ref), currency=currency)
        if ref_value(ref)
        else None,
        transaction_date=issue,
        currency=currency,
        amount=total,
        allocations=tuple(allocations),
        method=ref_name(raw.get("PaymentMethodRef")),
        status="void" if total == 0 and note.strip().startswith(VOID_MARK) else "completed",
        processor_transaction_id=str(card.get("CCTransId") or ""),
        memo=note,
        raw=dict(raw),
    )


def parse_customer(raw: Mapping[str, Any], *, home_currency: str = "") -> CustomerRecord:
    external_id = _id(raw)
    name = raw.get("DisplayName") or raw.get("FullyQualifiedName") or raw.get("CompanyName")
    if not name:
        raise ValidationError("DisplayName is missing", field="DisplayName", value=name)
    email = raw.get("PrimaryEmailAddr")
    tax_number = str(raw.get("PrimaryTaxIdentifier") or "")
    currency = ref_value(raw.get("CurrencyRef"))
    return CustomerRecord(
        name=str(name),
        email=str(email.get("Address") or "") if isinstance(email, dict) else "",
        tax_number="" if tax_number.startswith("XXX") else tax_number,  # Intuit masks it on reads
        external_id=external_id,
        currency=currency_code(currency, field="CurrencyRef") if currency else "",
    )
