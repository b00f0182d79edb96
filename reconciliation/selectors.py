"""Reads for the finance dashboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from connectors.models import Connection
from reconciliation.models import Override, ReconciliationException
from sync.models import SyncJob

AGE_BUCKETS = [("Under a day", 0, 1), ("1-7 days", 1, 7), ("7-30 days", 7, 30), ("Over 30 days", 30, None)]
_AGE_ALIASES = [f"age_{index}" for index in range(len(AGE_BUCKETS))]


def _bars(rows: list[tuple[str, int]]) -> list[dict[str, Any]]:
    top = max((value for _, value in rows), default=0) or 1
    return [{"label": label, "value": value, "percent": round(100 * value / top)} for label, value in rows]


def dashboard_summary(*, days: int = 14) -> dict[str, Any]:
    now = timezone.now()
    open_exceptions = ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES)
    labels = dict(ReconciliationException.Kind.choices)
    by_kind = open_exceptions.values("kind").annotate(n=Count("id")).order_by("-n")
    ages = open_exceptions.aggregate(
        **{
            alias: Count(
                "id",
                filter=Q(first_seen_at__lte=now - timedelta(days=low))
                & (Q(first_seen_at__gt=now - timedelta(days=high)) if high else Q()),
            )
            for alias, (_, low, high) in zip(_AGE_ALIASES, AGE_BUCKETS, strict=True)
        }
    )
    at_risk = (
        open_exceptions.exclude(amount_at_risk=None)
        .values("currency")
        .annotate(total=Sum("amount_at_risk"), n=Count("id"))
        .order_by("currency")
    )
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    jobs = {
        row["day"]: row
        for row in SyncJob.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            n=Count("id"),
            failed=Count("id", filter=Q(state=SyncJob.State.FAILED)),
            documents=Sum("created") + Sum("updated"),
        )
    }
    days_list = [(since + timedelta(days=i)).date() for i in range(days)]
    volume = [(day.strftime("%d %b"), (jobs.get(day) or {}).get("documents") or 0) for day in days_list]
    failures = [(day.strftime("%d %b"), (jobs.get(day) or {}).get("failed") or 0) for day in days_list]
    return {
        "open_total": sum(row["n"] for row in by_kind),
        "by_kind": _bars([(labels.get(row["kind"], row["kind"]), row["n"]) for row in by_kind]),
        "by_kind_keys": [row["kind"] for row in by_kind],
        "by_age": _bars(
            [(label, ages[alias]) for alias, (label, _, _) in zip(_AGE_ALIASES, AGE_BUCKETS, strict=True)]
        ),
        "at_risk": list(at_risk),
        "volume": _bars(volume),
        "failures": _bars(failures),
        "failed_total": sum(value for _, value in failures),
        "pending_overrides": Override.objects.filter(
            state=Override.State.PROPOSED, expires_at__gt=now
        ).count(),
        "connections": list(Connection.objects.order_by("name").values("pk", "name", "platform", "health")),
    }
