"""Query filters for the list endpoints (django-filter). Unknown values are a 400 naming the parameter."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import django_filters as filters
from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connectors.base import CREDIT_NOTE_STATUSES, INVOICE_STATUSES, PAYMENT_STATUSES
from connectors.models import Connection
from reconciliation.models import Override, ReconciliationException
from sync.models import Binding, CreditNote, Invoice, Payment, SyncJob

MAX_ID = 10**18 - 1  # below every backend's 64-bit integer, so a huge number is a 400, not an overflow
MAX_AMOUNT = 10**15


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.NumberFilter):
    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    """An instant in any offset, compared in UTC (PostgreSQL refuses offsets beyond ±15:59)."""

    def filter(self, queryset: QuerySet, value: Any) -> QuerySet:
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                raise serializers.ValidationError({self.field_name: [f"{value} is out of range."]}) from None
        return super().filter(queryset, value)


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class DocumentFilter(filters.FilterSet):
    object_type = ""
    currency = filters.CharFilter(method="filter_currency", help_text="ISO 4217 code, any case.")
    customer = IdFilter(field_name="customer_id", help_text="Customer id.")
    customer_email = filters.CharFilter(field_name="customer__email", lookup_expr="iexact")
    source_connection = IdFilter(field_name="source_connection_id", help_text="Connection id.")
    updated_since = UtcDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after this instant (ISO 8601)."
    )
    external_id = filters.CharFilter(
        method="filter_external_id", help_text="The document's id at its source connection."
    )

    def filter_currency(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(currency=value.strip().upper())

    def filter_external_id(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        origin = Binding.objects.filter(
            object_type=self.object_type, object_id=OuterRef("pk"), external_id=value, is_origin=True
        )
        return queryset.filter(Exists(origin))


class InvoiceFilter(DocumentFilter):
    object_type = "invoice"
    status = filters.ChoiceFilter(choices=_choices(INVOICE_STATUSES))
    issue_date = filters.DateFromToRangeFilter(help_text="issue_date_after / issue_date_before, inclusive.")
    due_date = filters.DateFromToRangeFilter(help_text="due_date_after / due_date_before, inclusive.")

    class Meta:
        model = Invoice
        fields = ["number", "status", "currency", "customer", "issue_date", "due_date"]


class CreditNoteFilter(DocumentFilter):
    object_type = "credit_note"
    status = filters.ChoiceFilter(choices=_choices(CREDIT_NOTE_STATUSES))
    issue_date = filters.DateFromToRangeFilter(help_text="issue_date_after / issue_date_before, inclusive.")

    class Meta:
        model = CreditNote
        fields = ["number", "status", "currency", "customer", "issue_date"]


class PaymentFilter(DocumentFilter):
    object_type = "payment"
    status = filters.ChoiceFilter(choices=_choices(PAYMENT_STATUSES))
    transaction_date = filters.DateFromToRangeFilter(
        help_text="transaction_date_after / transaction_date_before, inclusive."
    )

    class Meta:
        model = Payment
        fields = [
            "reference",
            "status",
            "currency",
            "customer",
            "transaction_date",
            "processor_transaction_id",
            "payout_id",
        ]


class SyncJobFilter(filters.FilterSet):
    profile = IdFilter(field_name="profile_id", help_text="Sync profile id.")
    connection = IdFilter(field_name="connection_id", help_text="Connection id.")
    created_since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = SyncJob
        fields = ["state", "kind", "trigger", "profile", "connection"]


class ConnectionFilter(filters.FilterSet):
    class Meta:
        model = Connection
        fields = ["platform", "role", "health"]


class ExceptionFilter(filters.FilterSet):
    kind = filters.MultipleChoiceFilter(choices=ReconciliationException.Kind.choices)
    state = filters.MultipleChoiceFilter(choices=ReconciliationException.State.choices)
    severity = filters.MultipleChoiceFilter(choices=ReconciliationException.Severity.choices)
    open = filters.BooleanFilter(method="filter_open", help_text="true: open, assigned or in review only.")
    connection = IdFilter(field_name="connection_id")
    assignee = IdFilter(field_name="assignee_id", help_text="User id.")
    unassigned = filters.BooleanFilter(field_name="assignee", lookup_expr="isnull")
    tag = filters.CharFilter(field_name="tags__name", help_text="Tag name.", distinct=True)
    older_than_days = IdFilter(
        method="filter_older", max_value=36_500, help_text="First seen at least N days ago."
    )
    newer_than_days = IdFilter(
        method="filter_newer", max_value=36_500, help_text="First seen less than N days ago."
    )
    amount_at_risk_min = filters.NumberFilter(
        field_name="amount_at_risk", lookup_expr="gte", min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT
    )
    amount_at_risk_max = filters.NumberFilter(
        field_name="amount_at_risk", lookup_expr="lte", min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT
    )
    currency = filters.CharFilter(method="filter_currency")
    object_type = filters.ChoiceFilter(choices=ReconciliationException._meta.get_field("object_type").choices)
    object_id = IdFilter()
    document_number = filters.CharFilter()

    class Meta:
        model = ReconciliationException
        fields: list[str] = []

    def filter_open(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        open_states = Q(state__in=ReconciliationException.OPEN_STATES)
        return queryset.filter(open_states) if value else queryset.exclude(open_states)

    def _days_ago(self, value: Any) -> Any:
        return timezone.now() - timedelta(days=int(value))

    def filter_older(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        return queryset.filter(first_seen_at__lte=self._days_ago(value))

    def filter_newer(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        return queryset.filter(first_seen_at__gt=self._days_ago(value))

    def filter_currency(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(currency=value.strip().upper())


class OverrideFilter(filters.FilterSet):
    state = filters.MultipleChoiceFilter(choices=Override.State.choices)
    action = filters.MultipleChoiceFilter(choices=Override.Action.choices)
    exception = IdFilter(field_name="exception_id")
    proposed_by = IdFilter(field_name="proposed_by_id")

    class Meta:
        model = Override
        fields: list[str] = []
