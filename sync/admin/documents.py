"""Canonical documents, read-only, with their lines, allocations and lineage."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from rangefilter.filters import DateRangeFilterBuilder

from config.history import HistoryAdmin
from sync.admin.base import ReadOnlyInline, _pretty, money_column
from sync.models import (
    CreditAllocation,
    CreditNote,
    CreditNoteLine,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAllocation,
)
from sync.money import money_str, number_str, price_str
from sync.selectors import document_bindings


class LineageMixin:
    """Where a document came from and every copy of it: the first thing finance staff look for."""

    object_type: str

    @admin.display(description="Lineage")
    def lineage(self, obj: Any) -> str:
        if not obj.pk:
            return "-"
        bindings = document_bindings(object_type=self.object_type, object_id=obj.pk)
        if not bindings:
            return "not bound to any connection"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            (
                (
                    b.connection.name,
                    "source" if b.is_origin else "copy",
                    b.external_id,
                    b.remote_version or "-",
                    b.last_synced_at.strftime("%Y-%m-%d %H:%M"),
                )
                for b in bindings
            ),
        )
        return format_html(
            "<table><thead><tr><th>Connection</th><th>Role</th><th>External id</th><th>Version</th>"
            "<th>Last synced</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Source payload")
    def source_payload(self, obj: Any) -> str:
        return _pretty(obj.raw_payload)


class LineInline(ReadOnlyInline):
    fields = ["line_number", "description", "item_code", "qty", "price", "rate", "net", "tax", "gross"]
    readonly_fields = fields

    def _currency(self, line: Any) -> str:
        return (getattr(line, "invoice", None) or line.credit_note).currency

    @admin.display(description="quantity")
    def qty(self, line: Any) -> str:
        return number_str(line.quantity)

    @admin.display(description="unit price")
    def price(self, line: Any) -> str:
        return price_str(line.unit_price, self._currency(line))

    @admin.display(description="tax rate %")
    def rate(self, line: Any) -> str:
        return number_str(line.tax_rate)

    @admin.display(description="subtotal")
    def net(self, line: Any) -> str:
        return money_str(line.subtotal, self._currency(line))

    @admin.display(description="tax")
    def tax(self, line: Any) -> str:
        return money_str(line.tax_amount, self._currency(line))

    @admin.display(description="total")
    def gross(self, line: Any) -> str:
        return money_str(line.total, self._currency(line))


class InvoiceLineInline(LineInline):
    model = InvoiceLine

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).select_related("invoice")


class CreditNoteLineInline(LineInline):
    model = CreditNoteLine

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).select_related("credit_note")


class AllocationInline(ReadOnlyInline):
    fields = ["invoice", "amount", "allocated_on"]
    readonly_fields = fields


class CreditAllocationInline(AllocationInline):
    model = CreditAllocation


class PaymentAllocationInline(AllocationInline):
    model = PaymentAllocation


@admin.register(Customer)
class CustomerAdmin(HistoryAdmin):
    list_display = ["name", "email", "tax_number", "currency", "updated_at"]
    list_filter = ["currency"]
    search_fields = ["name", "email", "tax_number"]


class DocumentAdmin(LineageMixin, HistoryAdmin):
    """Synced documents are read here, not edited: corrections are overrides a second person approves."""

    money_fields: tuple[str, ...] = ()
    head_fields: list[str] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.money_fields:
            setattr(cls, f"{name}_display", money_column(name))

    def get_fields(self, request: Any, obj: Any = None) -> list[str]:
        return [
            *self.head_fields,
            *(f"{name}_display" for name in self.money_fields),
            "lineage",
            "source_payload",
            "source_connection",
            "row_version",
            "created_at",
            "updated_at",
        ]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        return self.get_fields(request, obj)

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(DocumentAdmin):
    object_type = "invoice"
    money_fields = ("subtotal", "tax_total", "total", "lines_total", "amount_paid", "amount_due")
    head_fields = ["number", "customer", "status", "currency", "issue_date", "due_date", "paid_on_date"]
    list_display = [
        "number",
        "customer",
        "issue_date",
        "due_date",
        "status",
        "currency",
        "total_display",
        "amount_due_display",
        "source_connection",
    ]
    list_select_related = ["customer", "source_connection"]
    list_filter = [
        "status",
        "currency",
        "source_connection",
        ("issue_date", DateRangeFilterBuilder()),
        ("due_date", DateRangeFilterBuilder()),
    ]
    search_fields = ["number", "customer__name", "customer__email"]
    date_hierarchy = "issue_date"
    inlines = [InvoiceLineInline]


@admin.register(CreditNote)
class CreditNoteAdmin(DocumentAdmin):
    object_type = "credit_note"
    money_fields = ("subtotal", "tax_total", "total", "lines_total", "remaining_credit")
    head_fields = ["number", "customer", "status", "currency", "issue_date", "original_invoice", "memo"]
    list_display = [
        "number",
        "customer",
        "issue_date",
        "status",
        "currency",
        "total_display",
        "remaining_credit_display",
        "original_invoice",
    ]
    list_select_related = ["customer", "original_invoice"]
    list_filter = ["status", "currency", "source_connection", ("issue_date", DateRangeFilterBuilder())]
    search_fields = ["number", "customer__name", "original_invoice__number"]
    inlines = [CreditNoteLineInline, CreditAllocationInline]


@admin.register(Payment)
class PaymentAdmin(DocumentAdmin):
    object_type = "payment"
    money_fields = ("amount", "unapplied_amount", "fee")
    head_fields = [
        "reference", "customer", "status", "currency", "transaction_date", "method",
        "processor_transaction_id", "payout_id", "memo",
    ]  # fmt: skip
    list_display = [
        "reference",
        "customer",
        "transaction_date",
        "status",
        "currency",
        "amount_display",
        "unapplied_amount_display",
        "method",
        "fee_display",
    ]
    list_select_related = ["customer"]
    list_filter = [
        "status",
        "method",
        "currency",
        "source_connection",
        ("transaction_date", DateRangeFilterBuilder()),
    ]
    search_fields = ["reference", "processor_transaction_id", "payout_id", "customer__name"]
    inlines = [PaymentAllocationInline]


@admin.register(PaymentAllocation)
class PaymentAllocationAdmin(HistoryAdmin):
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    list_display = ["payment", "invoice", "amount", "allocated_on"]
    list_select_related = ["payment", "invoice"]
    search_fields = ["payment__reference", "invoice__number"]
    raw_id_fields = ["payment", "invoice"]
