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

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
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
    PushOperation,
    ReferenceData,
    SummaryMember,
    SummaryPosting,
    SyncAttempt,
    SyncCursor,
    SyncJob,
    SyncProfile,
)
from sync.money import money_str, number_str, price_str
from sync.selectors import (
    Lineage,
    document_bindings,
    document_lineage,
    exceptions_unbound,
    reference_data_by_kind,
)

# The admin page of each kind of canonical record, by Binding/PushOperation object_type.
DOCUMENT_ADMIN = {
    "invoice": "admin:sync_invoice_change",
    "credit_note": "admin:sync_creditnote_change",
    "payment": "admin:sync_payment_change",
    "customer": "admin:sync_customer_change",
    "summary_invoice": "admin:sync_summaryposting_change",
    "summary_credit_note": "admin:sync_summaryposting_change",
    "summary_payment": "admin:sync_summaryposting_change",
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
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the service is there but broken: show that, not "missing"
        return None
    return getattr(module, name, None)


class Outcomes:
    """What an action did to each object, reported as one counted message per outcome."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.done: list[str] = []
        self.skipped: list[str] = []
        self.failed: list[str] = []

    def run(
        self, objects: Iterable[Any], call: Callable[[Any], Any], describe: Callable[[Any, Any], str | None]
    ) -> None:
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
            {
                "id": attempt.job_id,
                "url": reverse("admin:sync_syncjob_change", args=[attempt.job_id]),
                "attempts": [],
            },
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
        "exceptions": [
            (exception, reverse(EXCEPTION_CHANGE, args=[exception.pk])) for exception in lineage.exceptions
        ],
    }


# Which of the destination's reference data a mapping row of each kind points at.
REFERENCE_KIND = {
    MappingRow.Kind.REVENUE_ACCOUNT.value: ReferenceData.Kind.ACCOUNT.value,
    MappingRow.Kind.TAX_CODE.value: ReferenceData.Kind.TAX_CODE.value,
    MappingRow.Kind.ITEM.value: ReferenceData.Kind.ITEM.value,
    MappingRow.Kind.CUSTOMER.value: ReferenceData.Kind.CUSTOMER.value,
    MappingRow.Kind.PAYMENT_METHOD.value: ReferenceData.Kind.ACCOUNT.value,
}


def _reference_label(ref: ReferenceData) -> str:
    return f"{ref.name} ({ref.code})" if ref.name else ref.code


class ReferenceSuggestInput(forms.TextInput):
    """Free text with the destination's values suggested: for a new row, whose kind is not chosen yet."""

    def __init__(self, suggestions: list[tuple[str, str]], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.suggestions = suggestions

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> str:
        attrs = dict(attrs or {})
        list_id = f"{attrs.get('id') or name}_choices"
        attrs["list"] = list_id
        options = format_html_join(
            "", '<option value="{}">{}</option>', ((code, label) for code, label in self.suggestions)
        )
        return format_html(
            '{}<datalist id="{}">{}</datalist>',
            super().render(name, value, attrs, renderer),
            list_id,
            options,
        )


class MappingRowForm(forms.ModelForm):
    """`target_value` offers the destination's reference data, and must be one of them when there is any.

    Rows of a kind whose reference data has not been fetched keep a free text input. An unchanged row is
    not re-checked, so a value that disappeared from the destination does not block editing other rows;
    its option is marked instead.
    """

    class Meta:
        model = MappingRow
        fields = ["kind", "source_value", "target_value", "target_label"]

    def __init__(
        self,
        *args: Any,
        reference: dict[str, dict[str, ReferenceData]] | None = None,
        mapping_set: MappingSet | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if mapping_set is None and self.instance.mapping_set_id:
            mapping_set = self.instance.mapping_set
        self.mapping_set = mapping_set
        if reference is None:
            reference = reference_data_by_kind(
                connection_id=mapping_set.destination_id if mapping_set else None
            )
        self.reference = reference
        self._offer_choices()

    def _row_kind(self) -> str:
        if self.is_bound:
            return self.data.get(self.add_prefix("kind"), "")
        return self.initial.get("kind") or self.instance.kind or ""

    def _offer_choices(self) -> None:
        field = self.fields["target_value"]
        ref_kind = REFERENCE_KIND.get(self._row_kind())
        known = self.reference.get(ref_kind, {}) if ref_kind else {}
        if known:
            choices = [("", "---------")]
            choices += [(code, _reference_label(ref)) for code, ref in known.items() if ref.active]
            current = self.initial.get("target_value") or ""
            if current and (current not in known or not known[current].active):
                note = "inactive" if current in known else "not in the destination's reference data"
                choices.append((current, f"{current} ({note})"))
            field.widget = forms.Select(choices=choices)
        elif not ref_kind and self.reference:
            suggestions = [
                (code, f"{ReferenceData.Kind(kind).label}: {_reference_label(ref)}")
                for kind, refs in self.reference.items()
                for code, ref in refs.items()
                if ref.active
            ]
            field.widget = ReferenceSuggestInput(suggestions, attrs={"size": 30})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind, value = cleaned.get("kind"), cleaned.get("target_value")
        mapping_set = cleaned.get("mapping_set") or self.mapping_set
        reference = self.reference
        if mapping_set is not self.mapping_set:  # the stand-alone row form, moved to another set
            reference = reference_data_by_kind(
                connection_id=mapping_set.destination_id if mapping_set else None
            )
        ref_kind = REFERENCE_KIND.get(kind or "")
        known = reference.get(ref_kind, {}) if ref_kind else {}
        if not known or not value:
            return cleaned
        if self.instance.pk and not {"kind", "target_value", "mapping_set"} & set(self.changed_data):
            return cleaned
        ref = known.get(value)
        destination = (
            mapping_set.destination if mapping_set and mapping_set.destination_id else "the destination"
        )
        kind_label = ReferenceData.Kind(ref_kind).label.lower()
        if ref is None:
            self.add_error(
                "target_value",
                f"Target value {value!r} is not a known {kind_label} of {destination} "
                f"({len(known)} fetched). Pick one from the list, or refresh the reference data.",
            )
        elif not ref.active:
            self.add_error(
                "target_value", f"Target value {value!r}: the {kind_label} is inactive in {destination}."
            )
        elif not cleaned.get("target_label"):
            cleaned["target_label"] = ref.name
        return cleaned


class MappingRowFormSet(forms.BaseInlineFormSet):
    """Loads the destination's reference data once for every row (a fixed number of queries)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reference = reference_data_by_kind(connection_id=self.instance.destination_id)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "reference": self.reference, "mapping_set": self.instance}


class MappingRowInline(admin.TabularInline):
    model = MappingRow
    form = MappingRowForm
    formset = MappingRowFormSet
    extra = 1
    fields = ["kind", "source_value", "target_value", "target_label"]


def _refresh_summary(counts: dict[str, Any]) -> str:
    labels = dict(ReferenceData.Kind.choices)
    return (
        ", ".join(f"{labels.get(kind, kind)}: {count}" for kind, count in sorted(counts.items())) or "nothing"
    )


@admin.register(MappingSet)
class MappingSetAdmin(SimpleHistoryAdmin):
    change_form_template = "admin/sync/mappingset/change_form.html"
    actions = ["refresh_reference_data"]
    list_display = ["name", "destination", "number_prefix", "number_suffix", "updated_at"]
    list_select_related = ["destination"]
    list_filter = ["destination"]
    search_fields = ["name"]
    inlines = [MappingRowInline]

    def get_urls(self) -> list[Any]:
        refresh = path(
            "<path:object_id>/refresh-reference/",
            self.admin_site.admin_view(self.refresh_view),
            name="sync_mappingset_refresh_reference",
        )
        return [refresh, *super().get_urls()]

    def _refresh(self, request: HttpRequest, mapping_sets: Iterable[MappingSet]) -> None:
        refresh = _service("sync.reference.reference_data_refresh")
        if refresh is None:
            _service_missing(self, request, "sync.reference.reference_data_refresh")
            return
        connections = {m.destination_id: m.destination for m in mapping_sets if m.destination_id}
        outcomes = Outcomes("Reference data refreshed")
        outcomes.run(
            connections.values(),
            refresh,
            lambda connection, counts: f"{connection.name}: {_refresh_summary(counts or {})}",
        )
        if not connections:
            self.message_user(request, "No destination set: nothing to refresh.", messages.WARNING)
        outcomes.report(self, request)

    @admin.action(description="Refresh reference data from the destination", permissions=["change"])
    def refresh_reference_data(self, request: HttpRequest, queryset: QuerySet[MappingSet]) -> None:
        self._refresh(request, queryset.select_related("destination"))

    def refresh_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        mapping_set = get_object_or_404(MappingSet.objects.select_related("destination"), pk=object_id)
        if not self.has_change_permission(request, mapping_set):
            raise PermissionDenied
        self._refresh(request, [mapping_set])
        return HttpResponseRedirect(reverse("admin:sync_mappingset_change", args=[mapping_set.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk and obj.destination_id and self.has_change_permission(request, obj):
            context["refresh_reference_url"] = reverse(
                "admin:sync_mappingset_refresh_reference", args=[obj.pk]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(MappingRow)
class MappingRowAdmin(SimpleHistoryAdmin):
    form = MappingRowForm
    fields = ["mapping_set", "kind", "source_value", "target_value", "target_label"]
    list_display = ["mapping_set", "kind", "source_value", "target_value", "target_label"]
    list_select_related = ["mapping_set"]
    list_filter = ["kind", "mapping_set"]
    search_fields = ["source_value", "target_value", "target_label"]


@admin.register(ReferenceData)
class ReferenceDataAdmin(admin.ModelAdmin):
    """What the destination offers as mapping targets; fetched by "Refresh reference data", never typed."""

    list_display = ["code", "name", "kind", "connection", "email", "tax_number", "active", "fetched_at"]
    list_select_related = ["connection"]
    list_filter = ["connection", "kind", "active"]
    search_fields = ["code", "name", "email", "tax_number"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SyncCursor)
class SyncCursorAdmin(admin.ModelAdmin):
    list_display = [
        "connection",
        "object_type",
        "since",
        "pulled_at",
        "run_started",
        "run_page",
        "updated_at",
    ]
    list_select_related = ["connection"]
    list_filter = ["connection", "object_type", "run_started"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SyncProfile)
class SyncProfileAdmin(SimpleHistoryAdmin):
    change_form_template = "admin/sync/syncprofile/change_form.html"
    actions = ["run_now", "reconcile_now", "dry_run"]
    list_display = ["name", "source", "destination", "schedule", "posting_mode", "cutover_date", "enabled"]
    list_select_related = ["source", "destination"]
    list_filter = ["enabled", "schedule", "posting_mode", "source", "destination"]
    search_fields = ["name"]

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Starting a job is the job table's change permission (integration admins)."""
        return request.user.has_perm("sync.change_syncjob")

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> None:
        job_enqueue = _service("sync.jobs.job_enqueue")
        if job_enqueue is None:
            _service_missing(self, request, "sync.jobs.job_enqueue")
            return
        outcomes = Outcomes("Queued")
        outcomes.run(
            queryset,
            lambda profile: job_enqueue(kind="sync", trigger="manual", profile=profile, user=request.user),
            lambda profile, job: f"{profile.name} as job #{job.pk}" if job is not None else None,
        )
        outcomes.report(self, request, skipped_reason="not queued (already queued or running)")

    @admin.action(description="Reconcile now: compare source and destination", permissions=["run"])
    def reconcile_now(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> None:
        reconcile_enqueue = _service("reconciliation.services.reconcile_enqueue")
        if reconcile_enqueue is None:
            _service_missing(self, request, "reconciliation.services.reconcile_enqueue")
            return
        outcomes = Outcomes("Queued")
        outcomes.run(
            queryset,
            lambda profile: reconcile_enqueue(profile, user=request.user),
            lambda profile, job: f"reconciliation of {profile.name} as job #{job.pk}",
        )
        outcomes.report(self, request)

    @admin.action(description="Dry run: show what would be sent", permissions=["view"])
    def dry_run(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> HttpResponse | None:
        return self._dry_run_response(request, list(queryset.select_related("source", "destination")))

    def get_urls(self) -> list[Any]:
        dry_run = path(
            "<path:object_id>/dry-run/",
            self.admin_site.admin_view(self.dry_run_view),
            name="sync_syncprofile_dry_run",
        )
        return [dry_run, *super().get_urls()]

    def dry_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse | None:
        profile = get_object_or_404(SyncProfile.objects.select_related("source", "destination"), pk=object_id)
        if not self.has_view_permission(request, profile):
            raise PermissionDenied
        return self._dry_run_response(request, [profile])

    def _dry_run_response(self, request: HttpRequest, profiles: list[SyncProfile]) -> HttpResponse | None:
        profile_preview = _service("sync.preview.profile_preview")
        if profile_preview is None:
            _service_missing(self, request, "sync.preview.profile_preview")
            return None
        sections = []
        for profile in profiles:
            section: dict[str, Any] = {"profile": profile, "items": [], "error": ""}
            try:
                items = list(profile_preview(profile, limit=50))
            except Exception as exc:  # show the others' previews, and why this one has none
                section["error"] = f"{type(exc).__name__}: {exc}"
                items = []
            section["items"] = [
                {
                    "item": item,
                    "url": document_admin_url(item.object_type, item.object_id),
                    "payload": _json(item.payload),
                }
                for item in items
            ]
            sections.append(section)
        context = {
            **self.admin_site.each_context(request),
            "title": "Dry run",
            "opts": self.model._meta,
            "sections": sections,
        }
        return TemplateResponse(request, "admin/sync/dry_run.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["dry_run_url"] = reverse("admin:sync_syncprofile_dry_run", args=[obj.pk])
            context["jobs_url"] = reverse("admin:sync_syncjob_changelist") + f"?profile__id__exact={obj.pk}"
        return super().render_change_form(request, context, add, change, form_url, obj)


class SyncAttemptInline(ReadOnlyInline):
    model = SyncAttempt
    fields = ["number", "outcome", "started_at", "finished_at", "error", "log"]
    readonly_fields = fields


@admin.register(SyncJob)
class SyncJobAdmin(admin.ModelAdmin):
    actions = ["run_again", "cancel", "retry_failed"]
    list_display = [
        "__str__",
        "kind",
        "state",
        "progress",
        "trigger",
        "profile",
        "connection",
        "seen",
        "created",
        "updated",
        "skipped",
        "failed",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
    ]
    list_select_related = ["connection", "profile"]
    list_filter = [
        "state",
        "kind",
        "trigger",
        "dry_run",
        "profile",
        "connection",
        ("created_at", DateRangeFilterBuilder()),
    ]
    search_fields = ["=id", "params"]
    inlines = [SyncAttemptInline]
    readonly_fields = [*(f.name for f in SyncJob._meta.fields), "push_operations"]

    RECENT_OPERATIONS = 50

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

    @admin.display(description="Push operations (newest first)")
    def push_operations(self, obj: SyncJob) -> str:
        if not obj.pk:
            return "-"
        operations = list(
            obj.operations.select_related("connection").order_by("-updated_at", "-id")[
                : self.RECENT_OPERATIONS
            ]
        )
        if not operations:
            return "none"
        all_url = reverse("admin:sync_pushoperation_changelist") + f"?job__id__exact={obj.pk}"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            (
                (
                    _link(
                        reverse("admin:sync_pushoperation_change", args=[op.pk]), op.get_operation_display()
                    ),
                    _link(
                        document_admin_url(op.object_type, op.object_id), f"{op.object_type} {op.object_id}"
                    ),
                    op.connection.name,
                    op.get_state_display(),
                    op.attempts,
                    op.external_id or "-",
                    op.error[:200] or "",
                )
                for op in operations
            ),
        )
        return format_html(
            "<table><thead><tr><th>Operation</th><th>Document</th><th>Destination</th><th>State</th>"
            "<th>Attempts</th><th>Destination id</th><th>Error</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All push operations of this job</a></p>',
            rows,
            all_url,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Run again now", permissions=["change"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        job_rerun = _service("sync.jobs.job_rerun")
        if job_rerun is None:
            _service_missing(self, request, "sync.jobs.job_rerun")
            return
        outcomes = Outcomes("Queued again")
        outcomes.run(
            queryset,
            lambda job: job_rerun(job, user=request.user),
            lambda job, new: f"#{job.pk} as #{new.pk}" if new is not None else None,
        )
        outcomes.report(self, request, skipped_reason="not queued again")

    @admin.action(description="Cancel", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        job_cancel = _service("sync.jobs.job_cancel")
        if job_cancel is None:
            _service_missing(self, request, "sync.jobs.job_cancel")
            return
        outcomes = Outcomes("Cancelled")
        outcomes.run(
            queryset,
            lambda job: job_cancel(job, user=request.user),
            lambda job, cancelled: f"#{job.pk}" if cancelled else None,
        )
        outcomes.report(self, request, skipped_reason="not cancelled (already finished)")

    @admin.action(description="Retry failed items", permissions=["change"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        operations_retry = _service("sync.jobs.operations_retry")
        if operations_retry is None:
            _service_missing(self, request, "sync.jobs.operations_retry")
            return
        outcomes = Outcomes("Retrying")
        outcomes.run(
            queryset,
            lambda job: operations_retry(job, user=request.user),
            lambda job, new: f"failed items of #{job.pk} as #{new.pk}" if new is not None else None,
        )
        outcomes.report(self, request, skipped_reason="with nothing to retry")


@admin.register(PushOperation)
class PushOperationAdmin(admin.ModelAdmin):
    """The outbox, read-only: operations change state only through the push protocol."""

    list_display = [
        "__str__",
        "state",
        "operation",
        "document",
        "connection",
        "profile",
        "attempts",
        "external_id",
        "reference",
        "job_link",
        "updated_at",
    ]
    list_select_related = ["connection", "profile", "job"]
    list_filter = ["state", "operation", "object_type", "connection", "profile"]
    search_fields = ["=idempotency_key", "reference", "=external_id"]
    fields = [
        "state",
        "operation",
        "document",
        "document_version",
        "connection",
        "profile",
        "job_link",
        "idempotency_key",
        "reference",
        "attempts",
        "next_attempt_at",
        "external_id",
        "remote_version",
        "error",
        "payload_pretty",
        "response_pretty",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="Document", ordering="object_id")
    def document(self, obj: PushOperation) -> str:
        return _link(document_admin_url(obj.object_type, obj.object_id), f"{obj.object_type} {obj.object_id}")

    @admin.display(description="Job", ordering="job")
    def job_link(self, obj: PushOperation) -> str:
        if obj.job_id is None:
            return "-"
        return _link(reverse("admin:sync_syncjob_change", args=[obj.job_id]), obj.job)

    @admin.display(description="Payload")
    def payload_pretty(self, obj: PushOperation) -> str:
        return _pretty(obj.payload)

    @admin.display(description="Response")
    def response_pretty(self, obj: PushOperation) -> str:
        return _pretty(obj.response)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
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


class SummaryMemberInline(admin.TabularInline):
    model = SummaryMember
    fields = ["document", "document_version"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="Document")
    def document(self, obj: SummaryMember) -> str:
        return _link(document_admin_url(obj.object_type, obj.object_id), f"{obj.object_type} {obj.object_id}")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(SummaryPosting)
class SummaryPostingAdmin(admin.ModelAdmin):
    """Daily summaries are written by the push alone: read-only here, with their members."""

    list_display = [
        "number",
        "kind",
        "day",
        "currency",
        "member_count",
        "total",
        "row_version",
        "posted_version",
        "destination_id",
        "profile",
    ]
    list_select_related = ["profile"]
    list_filter = ["kind", "currency", "profile", ("day", DateRangeFilterBuilder())]
    search_fields = ["number"]
    date_hierarchy = "day"
    readonly_fields = [f.name for f in SummaryPosting._meta.fields]
    inlines = [SummaryMemberInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SummaryPosting]:
        from django.db.models import OuterRef, Subquery

        bound = Binding.objects.filter(
            connection_id=OuterRef("profile__destination_id"),
            object_type=OuterRef("kind"),
            object_id=OuterRef("pk"),
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                bound_external_id=Subquery(bound.values("external_id")[:1]),
                bound_version=Subquery(bound.values("document_version")[:1]),
            )
        )

    @admin.display(description="Posted version", ordering="bound_version")
    def posted_version(self, obj: Any) -> Any:
        return obj.bound_version if obj.bound_version is not None else "-"

    @admin.display(description="Destination id", ordering="bound_external_id")
    def destination_id(self, obj: Any) -> str:
        return obj.bound_external_id or "-"

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
