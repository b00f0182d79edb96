"""Bindings, and the lookup page: a source id, destination id or document number to every matching
document and its whole lineage."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from sync.admin.base import _json, document_admin_url
from sync.models import Binding
from sync.money import money_str
from sync.selectors import Lineage, document_lineage, exceptions_unbound


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
