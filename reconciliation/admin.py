from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from rangefilter.filters import DateRangeFilterBuilder
from simple_history.admin import SimpleHistoryAdmin

from reconciliation.models import Override, ReconciliationException, Tag
from sync.money import money_str


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BUCKETS = {"1d": (None, 1), "7d": (1, 7), "30d": (7, 30), "older": (30, None)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1d", "Under a day"), ("7d", "1-7 days"), ("30d", "7-30 days"), ("older", "Over 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        from datetime import timedelta

        from django.utils import timezone

        if self.value() not in self.BUCKETS:
            return queryset
        low, high = self.BUCKETS[self.value()]  # type: ignore[index]
        now = timezone.now()
        if low is not None:
            queryset = queryset.filter(first_seen_at__lte=now - timedelta(days=low))
        if high is not None:
            queryset = queryset.filter(first_seen_at__gt=now - timedelta(days=high))
        return queryset


# People triage these; everything else on an exception is what the check found.
EXCEPTION_EDITABLE_FIELDS = ("severity", "state", "assignee", "tags")


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(SimpleHistoryAdmin):
    list_display = [
        "title",
        "kind",
        "severity",
        "state",
        "at_risk",
        "document_number",
        "assignee",
        "first_seen_at",
    ]
    list_select_related = ["connection", "assignee"]
    list_filter = [
        "state",
        "kind",
        "severity",
        AgeFilter,
        "connection",
        "assignee",
        "tags",
        ("first_seen_at", DateRangeFilterBuilder()),
    ]
    search_fields = ["document_number", "=external_id", "title", "fingerprint"]
    fields = [
        "title",
        "kind",
        "severity",
        "state",
        "assignee",
        "tags",
        "message",
        "details_pretty",
        "document_number",
        "external_id",
        "object_type",
        "object_id",
        "connection",
        "job",
        "currency",
        "amount_at_risk",
        "amount_at_risk_base",
        "occurrences",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
        "resolved_by",
        "resolved_by_system",
        "fingerprint",
    ]
    readonly_fields = [name for name in fields if name not in EXCEPTION_EDITABLE_FIELDS]
    filter_horizontal = ["tags"]

    @admin.display(description="amount at risk", ordering="amount_at_risk")
    def at_risk(self, obj: ReconciliationException) -> str:
        if obj.amount_at_risk is None:
            return "-"
        return f"{obj.currency} {money_str(obj.amount_at_risk, obj.currency)}" if obj.currency else "-"

    @admin.display(description="details")
    def details_pretty(self, obj: ReconciliationException) -> str:
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>",
            json.dumps(obj.details, indent=2, ensure_ascii=False),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # findings are raised by checks and imports, not typed in


@admin.register(Override)
class OverrideAdmin(SimpleHistoryAdmin):
    list_display = [
        "__str__",
        "action",
        "state",
        "document_number",
        "proposed_by",
        "proposed_at",
        "expires_at",
        "decided_by",
        "decided_at",
    ]
    list_select_related = ["proposed_by", "decided_by"]
    list_filter = ["state", "action", ("proposed_at", DateRangeFilterBuilder())]
    search_fields = ["document_number", "reason", "field_name"]
    raw_id_fields = ["exception", "reverts"]
    readonly_fields = ["state", "proposed_by", "proposed_at", "decided_by", "decided_at", "applied_at"]

    def save_model(self, request: HttpRequest, obj: Override, form: Any, change: bool) -> None:
        if not change:
            obj.proposed_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]
