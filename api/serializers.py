"""What the API answers with. Amounts are strings at the currency's minor unit (JPY "1500", GBP "12.30")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from sync.models import CreditNote, CreditNoteLine, Customer, Invoice, InvoiceLine, Payment
from sync.money import money_str, number_str, price_str

MONEY = {"max_digits": 19, "decimal_places": 4, "coerce_to_string": True, "read_only": True}
LINE_MONEY = ("subtotal", "tax_amount", "total")


def _money(value: Any, currency: str) -> str | None:
    return money_str(Decimal(value), currency) if value is not None else None


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "name", "email", "tax_number", "currency"]


class LineSerializer(serializers.ModelSerializer):
    quantity = serializers.DecimalField(
        max_digits=19, decimal_places=6, coerce_to_string=True, read_only=True
    )
    unit_price = serializers.DecimalField(
        max_digits=19, decimal_places=6, coerce_to_string=True, read_only=True
    )
    tax_rate = serializers.DecimalField(
        max_digits=9,
        decimal_places=4,
        coerce_to_string=True,
        read_only=True,
        allow_null=True,
        help_text="Percent.",
    )
    subtotal = serializers.DecimalField(**MONEY)
    tax_amount = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)

    class Meta:
        model = InvoiceLine
        fields = [
            "line_number",
            "description",
            "item_code",
            "quantity",
            "unit_price",
            "tax_rate",
            "subtotal",
            "tax_amount",
            "total",
        ]


class CreditNoteLineSerializer(LineSerializer):
    class Meta(LineSerializer.Meta):
        model = CreditNoteLine


class AllocationSerializer(serializers.Serializer):
    invoice_id = serializers.IntegerField()
    invoice_number = serializers.CharField(source="invoice.number")
    amount = serializers.DecimalField(**MONEY)
    allocated_on = serializers.DateField(allow_null=True)


class DocumentSerializer(serializers.ModelSerializer):
    """Shared by the three documents: amounts at the currency's minor unit, quantities without noise."""

    external_id = serializers.CharField(
        read_only=True, allow_null=True, help_text="The document's id at its source connection."
    )
    source_connection = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    money_fields: tuple[str, ...] = ()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        currency = instance.currency
        for name in self.money_fields:
            data[name] = _money(getattr(instance, name), currency)
        for line, row in zip(
            data.get("lines", []), instance.lines.all() if "lines" in data else [], strict=False
        ):
            for name in LINE_MONEY:
                line[name] = _money(getattr(row, name), currency)
            line["unit_price"] = price_str(row.unit_price, currency)
            line["quantity"] = number_str(row.quantity)
            line["tax_rate"] = number_str(row.tax_rate) if row.tax_rate is not None else None
        for allocation in data.get("allocations", []):
            allocation["amount"] = _money(allocation["amount"], currency)
        return data


class InvoiceSerializer(DocumentSerializer):
    customer = CustomerSerializer(read_only=True)
    lines = LineSerializer(many=True, read_only=True)
    subtotal = serializers.DecimalField(**MONEY)
    tax_total = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)
    lines_total = serializers.DecimalField(**MONEY, help_text="Sum of the lines, with tax.")
    amount_paid = serializers.DecimalField(**MONEY)
    amount_due = serializers.DecimalField(**MONEY)
    money_fields = ("subtotal", "tax_total", "total", "lines_total", "amount_paid", "amount_due")

    class Meta:
        model = Invoice
        fields = [
            "id",
            "external_id",
            "source_connection",
            "number",
            "status",
            "customer",
            "issue_date",
            "due_date",
            "currency",
            "subtotal",
            "tax_total",
            "total",
            "lines_total",
            "amount_paid",
            "amount_due",
            "memo",
            "lines",
            "row_version",
            "created_at",
            "updated_at",
        ]


class CreditNoteSerializer(DocumentSerializer):
    customer = CustomerSerializer(read_only=True)
    original_invoice = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    subtotal = serializers.DecimalField(**MONEY)
    tax_total = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)
    lines_total = serializers.DecimalField(**MONEY)
    remaining_credit = serializers.DecimalField(**MONEY)
    lines = CreditNoteLineSerializer(many=True, read_only=True)
    allocations = AllocationSerializer(many=True, read_only=True)
    money_fields = ("subtotal", "tax_total", "total", "lines_total", "remaining_credit")

    class Meta:
        model = CreditNote
        fields = [
            "id",
            "external_id",
            "source_connection",
            "number",
            "status",
            "customer",
            "issue_date",
            "currency",
            "original_invoice",
            "subtotal",
            "tax_total",
            "total",
            "lines_total",
            "remaining_credit",
            "memo",
            "lines",
            "allocations",
            "row_version",
            "created_at",
            "updated_at",
        ]


class PaymentSerializer(DocumentSerializer):
    customer = CustomerSerializer(read_only=True, allow_null=True)
    amount = serializers.DecimalField(**MONEY)
    unapplied_amount = serializers.DecimalField(**MONEY)
    fee = serializers.DecimalField(**MONEY, allow_null=True)
    allocations = AllocationSerializer(many=True, read_only=True)
    money_fields = ("amount", "unapplied_amount", "fee")

    class Meta:
        model = Payment
        fields = [
            "id",
            "external_id",
            "source_connection",
            "reference",
            "status",
            "customer",
            "transaction_date",
            "currency",
            "amount",
            "unapplied_amount",
            "method",
            "processor_transaction_id",
            "fee",
            "payout_id",
            "memo",
            "allocations",
            "row_version",
            "created_at",
            "updated_at",
        ]
