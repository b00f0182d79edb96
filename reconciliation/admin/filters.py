"""The exception queue's filters: open work by default, age, amount at risk, assignee."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from reconciliation.admin.base import OPEN_WORK, State
from reconciliation.forms import workers
from reconciliation.models import ReconciliationException


class QueueStateFilter(admin.SimpleListFilter):
    """Open work by default: what still needs someone."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(OPEN_WORK, "Open work (open, assigned, in review)"), *State.choices, ("all", "All")]

    def choices(self, changelist: Any) -> Any:
        current = self.value() or OPEN_WORK
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value() or OPEN_WORK
        if value == OPEN_WORK:
            return queryset.filter(state__in=ReconciliationException.OPEN_STATES)
        if value in State.values:
            return queryset.filter(state=value)
        return queryset


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BUCKETS = {"1d": (None, 1), "7d": (1, 7), "30d": (7, 30), "older": (30, None)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1d", "Under a day"), ("7d", "1-7 days"), ("30d", "7-30 days"), ("older", "Over 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in self.BUCKETS:
            return queryset
        low, high = self.BUCKETS[self.value()]  # type: ignore[index]
        now = timezone.now()
        if low is not None:
            queryset = queryset.filter(first_seen_at__lte=now - timedelta(days=low))
        if high is not None:
            queryset = queryset.filter(first_seen_at__gt=now - timedelta(days=high))
        return queryset


class AmountAtRiskFilter(admin.SimpleListFilter):
    title = "amount at risk (document currency)"
    parameter_name = "at_risk"
    BUCKETS = {
        "none": None,
        "lt100": (0, 100),
        "lt1k": (100, 1000),
        "lt10k": (1000, 10000),
        "10k": (10000, None),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("none", "Not known"),
            ("lt100", "Under 100"),
            ("lt1k", "100 - 1,000"),
            ("lt10k", "1,000 - 10,000"),
            ("10k", "10,000 and over"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value not in self.BUCKETS:
            return queryset
        if value == "none":
            return queryset.filter(amount_at_risk__isnull=True)
        low, high = self.BUCKETS[value]  # type: ignore[misc]
        queryset = queryset.filter(amount_at_risk__gte=low)
        return queryset.filter(amount_at_risk__lt=high) if high is not None else queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        people = [(str(user.pk), user.get_username()) for user in workers()]
        return [("me", "Assigned to me"), ("none", "Nobody"), *people]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset
