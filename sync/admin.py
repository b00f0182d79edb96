"""The sync engine in the admin: documents, bindings and their lineage, jobs, the outbox, mappings.

Admin actions call services (`sync.jobs`, `sync.preview`, `sync.reference`), imported when the action
runs, so the admin still loads while a service module is missing; one object at a time, reporting what
succeeded and what failed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rangefilter.filters import DateRangeFilterBuilder
from simple_history.admin import SimpleHistoryAdmin

from connectors.models import HttpExchange
from sync.models import (
    Binding,
    CreditAllocation,
    CreditNote,
    CreditNoteLine,
    Customer,
    Invoice,
    InvoiceLine,
    MappingRow,
    MappingSet,
    Payment,
    PaymentAllocation,
    SyncAttempt,
    SyncJob,
    SyncProfile,
)
from sync.money import money_str, number_str, price_str
from sync.selectors import (
    document_bindings,
)

# The admin page of each kind of canonical record, by Binding/PushOperation object_type.
DOCUMENT_ADMIN = {
    "invoice": "admin:sync_invoice_change",
    "credit_note": "admin:sync_creditnote_change",
    "payment": "admin:sync_payment_change",
    "customer": "admin:sync_customer_change",
}


def document_admin_url(object_type: str, object_id: int | None) -> str:
    if object_type not in DOCUMENT_ADMIN or object_id is None:
        return ""
    return reverse(DOCUMENT_ADMIN[object_type], args=[object_id])


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def _service(dotted: str) -> Callable[..., Any] | None:
    """`module.function`, looked up when called (so tests can swap it), or None while it is missing."""
    module_name, _, name = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, name, None)


class Outcomes:
    """What an action did to each object, reported as one counted message per outcome."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.done: list[str] = []
        self.skipped: list[str] = []
        self.failed: list[str] = []

    def run(self, objects: Iterable[Any], call: Callable[[Any], Any], describe: Callable[[Any, Any], str | None]):
        """Call `call(obj)` for each; `describe(obj, result)` says what happened, None meaning skipped."""
        for obj in objects:
            try:
                result = call(obj)
            except Exception as exc:  # one bad object must not hide what happened to the others
                self.failed.append(f"{obj}: {exc}")
                continue
            text = describe(obj, result)
            if text is None:
                self.skipped.append(str(obj))
            else:
                self.done.append(text)

    def report(self, model_admin: admin.ModelAdmin, request: HttpRequest, skipped_reason: str = "") -> None:
        if self.done:
            model_admin.message_user(
                request, f"{self.verb}: {len(self.done)} ({'; '.join(self.done)})", messages.SUCCESS
            )
        if self.skipped:
            model_admin.message_user(
                request,
                f"{len(self.skipped)} {skipped_reason or 'skipped'}: {', '.join(self.skipped)}",
                messages.WARNING,
            )
        if self.failed:
            model_admin.message_user(
                request, f"{len(self.failed)} failed: {'; '.join(self.failed)}", messages.ERROR
            )


def _service_missing(model_admin: admin.ModelAdmin, request: HttpRequest, dotted: str) -> None:
    model_admin.message_user(
        request, f"Nothing done: the service {dotted} is not installed in this version.", messages.ERROR
    )


def _pretty(value: Any) -> str:
    return format_html(
        "<pre style='white-space:pre-wrap;max-height:24em;overflow:auto'>{}</pre>",
        json.dumps(value, indent=2, ensure_ascii=False, default=str),
    )


def _link(url: str, text: Any) -> str:
    return format_html('<a href="{}">{}</a>', url, text) if url else str(text)


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


def money_column(name: str, description: str = "") -> Any:
    """An admin column showing a money field at its document's currency precision."""

    @admin.display(description=description or name.replace("_", " "), ordering=name)
    def show(self: Any, obj: Any) -> str:
        return money_str(getattr(obj, name), obj.currency)

    return show


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


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
class CustomerAdmin(SimpleHistoryAdmin):
    list_display = ["name", "email", "tax_number", "currency", "updated_at"]
    list_filter = ["currency"]
    search_fields = ["name", "email", "tax_number"]


class DocumentAdmin(LineageMixin, SimpleHistoryAdmin):
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


@admin.register(Binding)
class BindingAdmin(admin.ModelAdmin):
    list_display = [
        "object_type",
        "object_id",
        "connection",
        "external_id",
        "external_number",
        "is_origin",
        "remote_version",
        "remote_deleted",
        "last_synced_at",
    ]
    list_select_related = ["connection"]
    list_filter = ["object_type", "connection", "is_origin", "remote_deleted"]
    search_fields = ["=external_id", "external_number"]
    readonly_fields = [f.name for f in Binding._meta.fields]

    def get_urls(self) -> list[Any]:
        lookup = path("lookup/", self.admin_site.admin_view(self.lookup_view), name="sync_lookup")
        return [lookup, *super().get_urls()]

    def lookup_view(self, request: HttpRequest) -> HttpResponse:
        """Source id, destination id or document number -> every matching document and its lineage."""
        if not request.user.has_perm("sync.view_binding"):
            raise PermissionDenied
        query = request.GET.get("q", "").strip()
        lineages = document_lineage(query) if query else []
        context = {
            **self.admin_site.each_context(request),
            "title": "Look up a document",
            "opts": self.model._meta,
            "query": query,
            "results": [lineage_card(lineage) for lineage in lineages],
            "unbound_exceptions": [
                (exception, reverse(EXCEPTION_CHANGE, args=[exception.pk]))
                for exception in (exceptions_unbound(query) if query else [])
            ],
        }
        return TemplateResponse(request, "admin/sync/lookup.html", context)


EXCEPTION_CHANGE = "admin:reconciliation_reconciliationexception_change"


def _key_fields(object_type: str, document: Any) -> list[tuple[str, Any]]:
    if document is None:
        return []
    if object_type == "customer":
        return [("Name", document.name), ("Email", document.email), ("Tax number", document.tax_number)]
    currency = document.currency
    if object_type == "payment":
        return [
            ("Reference", document.reference),
            ("Processor transaction id", document.processor_transaction_id),
            ("Customer", document.customer or "-"),
            ("Status", document.get_status_display()),
            ("Date", document.transaction_date),
            ("Amount", f"{currency} {money_str(document.amount, currency)}"),
            ("Method", document.method),
            ("Version", document.row_version),
        ]
    fields = [
        ("Number", document.number),
        ("Customer", document.customer),
        ("Status", document.get_status_display()),
        ("Issue date", document.issue_date),
        ("Total", f"{currency} {money_str(document.total, currency)}"),
    ]
    if object_type == "invoice":
        fields.append(("Amount due", f"{currency} {money_str(document.amount_due, currency)}"))
    else:
        fields.append(("Remaining credit", f"{currency} {money_str(document.remaining_credit, currency)}"))
    return [*fields, ("Version", document.row_version)]


def lineage_card(lineage: Lineage) -> dict[str, Any]:
    """What the lookup page shows for one document: plain values and links, no queries."""
    document = lineage.document
    row_version = getattr(document, "row_version", None)
    source = lineage.source
    operations = [
        {
            "op": op,
            "job_url": reverse("admin:sync_syncjob_change", args=[op.job_id]) if op.job_id else "",
            "url": reverse("admin:sync_pushoperation_change", args=[op.pk]),
            "payload": _json(op.payload) if op.payload is not None else "",
            "response": _json(op.response) if op.response is not None else "",
        }
        for op in lineage.operations
    ]
    jobs: dict[int, dict[str, Any]] = {}
    for attempt in lineage.attempts:
        job = jobs.setdefault(
            attempt.job_id,
            {"id": attempt.job_id, "url": reverse("admin:sync_syncjob_change", args=[attempt.job_id]), "attempts": []},
        )
        job["attempts"].append(
            {
                "attempt": attempt,
                "url": reverse("admin:sync_syncattempt_change", args=[attempt.pk]),
                "exchanges_url": reverse("admin:connectors_httpexchange_changelist")
                + f"?attempt__id__exact={attempt.pk}",
                "exchange_count": getattr(attempt, "exchange_count", None),
            }
        )
    return {
        "lineage": lineage,
        "title": str(document) if document is not None else f"{lineage.object_type} {lineage.object_id}",
        "url": document_admin_url(lineage.object_type, lineage.object_id) if document is not None else "",
        "fields": _key_fields(lineage.object_type, document),
        "source": source,
        "source_payload": _json(source.raw_payload if source else getattr(document, "raw_payload", {}) or {}),
        "destinations": [
            {
                "binding": binding,
                "behind": bool(
                    row_version and binding.document_version and binding.document_version < row_version
                ),
            }
            for binding in lineage.destinations
        ],
        "operations": operations,
        "jobs": list(jobs.values()),
        "exceptions": [(exception, reverse(EXCEPTION_CHANGE, args=[exception.pk])) for exception in lineage.exceptions],
    }


class MappingRowInline(admin.TabularInline):
    model = MappingRow
    extra = 1
    fields = ["kind", "source_value", "target_value", "target_label"]


@admin.register(MappingSet)
class MappingSetAdmin(SimpleHistoryAdmin):
    list_display = ["name", "destination", "number_prefix", "number_suffix", "updated_at"]
    list_select_related = ["destination"]
    list_filter = ["destination"]
    search_fields = ["name"]
    inlines = [MappingRowInline]


@admin.register(MappingRow)
class MappingRowAdmin(SimpleHistoryAdmin):
    list_display = ["mapping_set", "kind", "source_value", "target_value", "target_label"]
    list_select_related = ["mapping_set"]
    list_filter = ["kind", "mapping_set"]
    search_fields = ["source_value", "target_value", "target_label"]


@admin.register(SyncProfile)
class SyncProfileAdmin(SimpleHistoryAdmin):
    list_display = ["name", "source", "destination", "schedule", "posting_mode", "cutover_date", "enabled"]
    list_select_related = ["source", "destination"]
    list_filter = ["enabled", "schedule", "posting_mode", "source", "destination"]
    search_fields = ["name"]


class SyncAttemptInline(ReadOnlyInline):
    model = SyncAttempt
    fields = ["number", "outcome", "started_at", "finished_at", "error", "log"]
    readonly_fields = fields


@admin.register(SyncJob)
class SyncJobAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "state",
        "progress",
        "connection",
        "profile",
        "trigger",
        "seen",
        "created",
        "updated",
        "skipped",
        "failed",
        "created_at",
        "finished_at",
    ]
    list_select_related = ["connection", "profile"]
    list_filter = ["state", "kind", "trigger", "connection", ("created_at", DateRangeFilterBuilder())]
    search_fields = ["=id", "params"]
    inlines = [SyncAttemptInline]
    readonly_fields = [f.name for f in SyncJob._meta.fields]

    @admin.display(description="Progress")
    def progress(self, obj: SyncJob) -> str:
        percent = obj.progress_percent
        return format_html(
            '<progress max="100" value="{}" title="{} of {}">{}%</progress> {}%',
            percent,
            obj.progress_done,
            obj.progress_total,
            percent,
            percent,
        )

    def has_add_permission(self, request: Any) -> bool:
        return False


class HttpExchangeInline(admin.TabularInline):
    """The attempt's requests and answers, secrets already redacted when they were stored."""

    model = HttpExchange
    fields = [
        "created_at",
        "method",
        "url",
        "status",
        "retry",
        "duration_ms",
        "error",
        "request_body",
        "response_body",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(SyncAttempt)
class SyncAttemptAdmin(admin.ModelAdmin):
    list_display = ["__str__", "job", "outcome", "started_at", "finished_at"]
    list_select_related = ["job"]
    list_filter = ["outcome"]
    search_fields = ["=job__id", "error"]
    readonly_fields = [f.name for f in SyncAttempt._meta.fields]
    inlines = [HttpExchangeInline]

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(PaymentAllocation)
class PaymentAllocationAdmin(SimpleHistoryAdmin):
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
