"""What a caller sends for invoices, payments and credit notes, checked and turned into canonical records.

Totals may be left out: a line's subtotal is quantity x unit price at the currency's minor unit, its total
subtotal + tax; a document's totals are the sums of its lines. Totals that are sent must agree with the
lines, so what is stored never disagrees with itself. Every amount must fit the currency's minor unit
(JPY 0 places, GBP 2, KWD 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from rest_framework import serializers

from api.fields import CurrencyField, DecimalInputField, at_currency, minor_unit_message
from connectors.base import (
    CREDIT_NOTE_STATUSES,
    INVOICE_STATUSES,
    PAYMENT_STATUSES,
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
)
from connectors.money import currency_exponent

ZERO = Decimal(0)
MAX_LINES = 1000
Errors = dict[str, Any]


class CustomerInput(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    tax_number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    external_id = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", help_text="Your id for the customer."
    )
    currency = CurrencyField(required=False, allow_blank=True, default="", null_as_blank=True)


class LineInput(serializers.Serializer):
    line_number = serializers.IntegerField(
        min_value=1,
        max_value=1_000_000,
        required=False,
        help_text="Defaults to the line's position (1-based).",
    )
    description = serializers.CharField(max_length=500)
    item_code = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    quantity = DecimalInputField(places=6, required=False, default=Decimal(1))
    unit_price = DecimalInputField(places=6)
    tax_rate = DecimalInputField(
        places=4, minimum=ZERO, required=False, allow_null=True, default=None, help_text="Percent, e.g. 20."
    )
    subtotal = DecimalInputField(places=4, required=False, help_text="Defaults to quantity x unit_price.")
    tax_amount = DecimalInputField(places=4, required=False, default=ZERO)
    total = DecimalInputField(places=4, required=False, help_text="Defaults to subtotal + tax_amount.")


class AllocationInput(serializers.Serializer):
    invoice_external_id = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        help_text="Your id of the invoice (as sent with it); or give invoice_number.",
    )
    invoice_number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    amount = DecimalInputField(places=4, minimum=Decimal("0.0001"))
    allocated_on = serializers.DateField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["invoice_external_id"] and not attrs["invoice_number"]:
            raise serializers.ValidationError(
                {"invoice_external_id": ["Give invoice_external_id or invoice_number."]}
            )
        return attrs


def _choices(statuses: tuple[str, ...]) -> list[str]:
    return [status for status in statuses if status != "deleted"]


class DocumentInput(serializers.Serializer):
    external_id = serializers.CharField(
        max_length=255, help_text="Your own id for the document: a later write with it updates this one."
    )
    currency = CurrencyField()
    memo = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    money_fields: tuple[str, ...] = ()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        currency = attrs["currency"]
        errors: Errors = {}
        for name in self.money_fields:
            value = attrs.get(name)
            if value is not None and at_currency(value, currency) is None:
                errors[name] = [minor_unit_message(value, currency)]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def _lines_check(lines: list[dict[str, Any]], currency: str) -> tuple[list[dict[str, Any]], Errors]:
    """Fill in line numbers, subtotals and totals; errors per line where what was sent disagrees."""
    step = Decimal(1).scaleb(-currency_exponent(currency))
    problems: list[dict[str, list[str]]] = []
    seen: dict[int, int] = {}
    done = []
    for index, line in enumerate(lines):
        line = dict(line)
        errors: dict[str, list[str]] = {}
        number = line.get("line_number") or index + 1
        if number in seen:
            errors["line_number"] = [f"{number} is already the number of line {seen[number]}."]
        seen.setdefault(number, index)
        line["line_number"] = number
        for name in ("subtotal", "tax_amount", "total"):
            value = line.get(name)
            if value is not None and at_currency(value, currency) is None:
                errors[name] = [minor_unit_message(value, currency)]
        if errors:
            problems.append(errors)
            done.append(line)
            continue
        computed = (line["quantity"] * line["unit_price"]).quantize(step, rounding=ROUND_HALF_UP)
        line.setdefault("subtotal", computed)
        if line.get("subtotal") is None:
            line["subtotal"] = computed
        expected_total = line["subtotal"] + line["tax_amount"]
        if line.get("total") is None:
            line["total"] = expected_total
        elif line["total"] != expected_total:
            errors["total"] = [
                f"{format(line['total'], 'f')!r} is not subtotal {line['subtotal']} + tax_amount "
                f"{line['tax_amount']} ({expected_total})."
            ]
        problems.append(errors)
        done.append(line)
    if any(problems):
        return done, {"lines": problems}
    return done, {}


def _totals_check(attrs: dict[str, Any], lines: list[dict[str, Any]]) -> Errors:
    """Document totals default to the sums of the lines; sent ones must equal them."""
    sums = {
        "subtotal": sum((line["subtotal"] for line in lines), ZERO),
        "tax_total": sum((line["tax_amount"] for line in lines), ZERO),
        "total": sum((line["total"] for line in lines), ZERO),
    }
    names = {"subtotal": "the lines' subtotals", "tax_total": "the lines' tax", "total": "the lines' totals"}
    errors: Errors = {}
    for name, expected in sums.items():
        if attrs.get(name) is None:
            attrs[name] = expected
        elif attrs[name] != expected:
            errors[name] = [
                f"{format(attrs[name], 'f')!r} differs from the sum of {names[name]} ({expected})."
            ]
    return errors


class _LinedDocumentInput(DocumentInput):
    number = serializers.CharField(max_length=64)
    customer = CustomerInput()
    issue_date = serializers.DateField()
    lines = LineInput(many=True, allow_empty=False, max_length=MAX_LINES)
    subtotal = DecimalInputField(places=4, required=False, help_text="Defaults to the sum of the lines.")
    tax_total = DecimalInputField(places=4, required=False, help_text="Defaults to the lines' tax.")
    total = DecimalInputField(places=4, required=False, help_text="Defaults to the sum of the lines' totals.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        lines, errors = _lines_check(attrs["lines"], attrs["currency"])
        if errors:
            raise serializers.ValidationError(errors)
        attrs["lines"] = lines
        errors = _totals_check(attrs, lines)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class InvoiceInput(_LinedDocumentInput):
    due_date = serializers.DateField(required=False, allow_null=True, default=None)
    status = serializers.ChoiceField(choices=_choices(INVOICE_STATUSES), required=False, default="open")
    amount_paid = DecimalInputField(places=4, minimum=ZERO, required=False, default=ZERO)
    amount_due = DecimalInputField(places=4, required=False, help_text="Defaults to total - amount_paid.")
    money_fields = ("subtotal", "tax_total", "total", "amount_paid", "amount_due")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        errors: Errors = {}
        if attrs["due_date"] and attrs["due_date"] < attrs["issue_date"]:
            errors["due_date"] = [f"{attrs['due_date']} is before issue_date {attrs['issue_date']}."]
        expected_due = attrs["total"] - attrs["amount_paid"]
        if attrs.get("amount_due") is None:
            attrs["amount_due"] = expected_due
        elif attrs["amount_due"] != expected_due:
            errors["amount_due"] = [
                f"{format(attrs['amount_due'], 'f')!r} is not total - amount_paid ({expected_due})."
            ]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class CreditNoteInput(_LinedDocumentInput):
    status = serializers.ChoiceField(choices=_choices(CREDIT_NOTE_STATUSES), required=False, default="open")
    remaining_credit = DecimalInputField(
        places=4, minimum=ZERO, required=False, help_text="Defaults to the total less the allocations."
    )
    original_invoice_number = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )
    allocations = AllocationInput(many=True, required=False, default=list, max_length=MAX_LINES)
    money_fields = ("subtotal", "tax_total", "total", "remaining_credit")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        errors = _allocations_check(attrs, attrs["total"])
        allocated = sum((a["amount"] for a in attrs["allocations"]), ZERO)
        if attrs.get("remaining_credit") is None:
            attrs["remaining_credit"] = max(attrs["total"] - allocated, ZERO)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def _allocations_check(attrs: dict[str, Any], ceiling: Decimal) -> Errors:
    currency = attrs["currency"]
    problems = []
    for allocation in attrs["allocations"]:
        amount = allocation["amount"]
        problems.append(
            {} if at_currency(amount, currency) else {"amount": [minor_unit_message(amount, currency)]}
        )
    if any(problems):
        return {"allocations": problems}
    allocated = sum((a["amount"] for a in attrs["allocations"]), ZERO)
    if allocated > ceiling:
        return {
            "allocations": [f"The allocations add up to {allocated}, more than the document's {ceiling}."]
        }
    return {}


class PaymentInput(DocumentInput):
    reference = serializers.CharField(max_length=100)
    customer = CustomerInput(required=False, allow_null=True, default=None)
    transaction_date = serializers.DateField()
    amount = DecimalInputField(places=4, minimum=Decimal("0.0001"))
    allocations = AllocationInput(many=True, required=False, default=list, max_length=MAX_LINES)
    method = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    status = serializers.ChoiceField(choices=list(PAYMENT_STATUSES), required=False, default="completed")
    processor_transaction_id = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    fee = DecimalInputField(places=4, minimum=ZERO, required=False, allow_null=True, default=None)
    payout_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    money_fields = ("amount", "fee")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        errors = _allocations_check(attrs, attrs["amount"])
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- validated data -> canonical records ----------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Validated data as JSON (decimals as strings, dates ISO): the document's raw payload."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _customer(data: dict[str, Any] | None) -> CustomerRecord | None:
    if data is None:
        return None
    return CustomerRecord(
        name=data["name"],
        email=data["email"],
        tax_number=data["tax_number"],
        external_id=data["external_id"],
        currency=data["currency"],
    )


def _lines(lines: list[dict[str, Any]]) -> tuple[LineRecord, ...]:
    return tuple(
        LineRecord(
            description=line["description"],
            quantity=line["quantity"],
            unit_price=line["unit_price"],
            subtotal=line["subtotal"],
            tax_amount=line["tax_amount"],
            total=line["total"],
            tax_rate=line["tax_rate"],
            item_code=line["item_code"],
            line_number=line["line_number"],
        )
        for line in lines
    )


def _allocations(allocations: list[dict[str, Any]]) -> tuple[AllocationRecord, ...]:
    return tuple(
        AllocationRecord(
            invoice_number=a["invoice_number"],
            amount=a["amount"],
            allocated_on=a["allocated_on"],
            invoice_external_id=a["invoice_external_id"],
        )
        for a in allocations
    )


def invoice_from(data: dict[str, Any]) -> InvoiceRecord:
    return InvoiceRecord(
        external_id=data["external_id"],
        number=data["number"],
        customer=_customer(data["customer"]),  # type: ignore[arg-type]
        issue_date=data["issue_date"],
        currency=data["currency"],
        status=data["status"],
        lines=_lines(data["lines"]),
        subtotal=data["subtotal"],
        tax_total=data["tax_total"],
        total=data["total"],
        amount_paid=data["amount_paid"],
        amount_due=data["amount_due"],
        due_date=data["due_date"],
        memo=data["memo"],
        raw=_plain(data),
    )


def credit_note_from(data: dict[str, Any]) -> CreditNoteRecord:
    return CreditNoteRecord(
        external_id=data["external_id"],
        number=data["number"],
        customer=_customer(data["customer"]),  # type: ignore[arg-type]
        issue_date=data["issue_date"],
        currency=data["currency"],
        status=data["status"],
        lines=_lines(data["lines"]),
        subtotal=data["subtotal"],
        tax_total=data["tax_total"],
        total=data["total"],
        remaining_credit=data["remaining_credit"],
        original_invoice_number=data["original_invoice_number"],
        allocations=_allocations(data["allocations"]),
        memo=data["memo"],
        raw=_plain(data),
    )


def payment_from(data: dict[str, Any]) -> PaymentRecord:
    return PaymentRecord(
        external_id=data["external_id"],
        reference=data["reference"],
        customer=_customer(data["customer"]),
        transaction_date=data["transaction_date"],
        currency=data["currency"],
        amount=data["amount"],
        allocations=_allocations(data["allocations"]),
        method=data["method"],
        status=data["status"],
        processor_transaction_id=data["processor_transaction_id"],
        fee=data["fee"],
        payout_id=data["payout_id"],
        memo=data["memo"],
        raw=_plain(data),
    )


@dataclass(frozen=True)
class DocumentKind:
    """One writable document type: its input, how it becomes a record, and what voids it."""

    object_type: str
    label: str
    input: type[DocumentInput]
    record: Callable[[dict[str, Any]], Any]
    void_status: str


KINDS = {
    "invoice": DocumentKind("invoice", "Invoice", InvoiceInput, invoice_from, "void"),
    "payment": DocumentKind("payment", "Payment", PaymentInput, payment_from, "void"),
    "credit_note": DocumentKind("credit_note", "Credit note", CreditNoteInput, credit_note_from, "void"),
}
