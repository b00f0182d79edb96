"""Reads for the finance dashboard and the triage screens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from connectors.models import Connection
from reconciliation.models import Override, ReconciliationException
from sync.models import SyncJob

HEALTH = Connection.Health.choices
HEALTHY, UNKNOWN = Connection.Health.HEALTHY, Connection.Health.UNKNOWN
AGE_BUCKETS = [("Under a day", 0, 1), ("1-7 days", 1, 7), ("7-30 days", 7, 30), ("Over 30 days", 30, None)]
_AGE_ALIASES = [f"age_{index}" for index in range(len(AGE_BUCKETS))]


@dataclass
class Fixes:
    """Where an exception's page sends people to fix it."""

    lineage_url: str = ""
    document_url: str = ""
    mapping_url: str = ""
    repull: tuple[Connection, str, str] | None = None  # (connection, object type, external id)
    can_repush: bool = False


def exception_fixes(exception: ReconciliationException) -> Fixes:
    """Links and targets for an exception's fixes: its document's lineage, the mapping that blocked it,
    and where to re-pull it from (the document's source binding, else the connection it was found on)."""
    from sync.admin import document_admin_url
    from sync.models import Binding

    fixes = Fixes()
    query = exception.document_number or exception.external_id
    if query:
        fixes.lineage_url = reverse("admin:sync_lookup") + "?" + urlencode({"q": query})
    if exception.object_id:
        fixes.document_url = document_admin_url(exception.object_type, exception.object_id)
        fixes.can_repush = exception.object_type in ("invoice", "credit_note", "payment")
        origin = (
            Binding.objects.filter(
                object_type=exception.object_type, object_id=exception.object_id, is_origin=True
            )
            .select_related("connection")
            .first()
        )
        if origin is not None:
            fixes.repull = (origin.connection, origin.object_type, origin.external_id)
    if fixes.repull is None and exception.connection_id and exception.external_id and exception.object_type:
        fixes.repull = (exception.connection, exception.object_type, exception.external_id)
    mapping_url = (exception.details or {}).get("mapping_url")
    if isinstance(mapping_url, str) and mapping_url.startswith("/"):
        fixes.mapping_url = mapping_url
    return fixes


def _bars(rows: list[tuple[str, int]]) -> list[dict[str, Any]]:
    top = max((value for _, value in rows), default=0) or 1
    return [{"label": label, "value": value, "percent": round(100 * value / top)} for label, value in rows]


def dashboard_summary(*, days: int = 14, user: Any = None) -> dict[str, Any]:
    """Everything the finance dashboard draws, in a fixed number of queries (nine) whatever the rows."""
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
    connections = list(
        Connection.objects.order_by("name").values("pk", "name", "platform", "health", "last_checked_at")
    )
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
        **_pending(now, user),
        "connections": connections,
        "health": _bars(
            [(str(label), sum(1 for c in connections if c["health"] == value)) for value, label in HEALTH]
        ),
        "unhealthy": sum(1 for c in connections if c["health"] not in (HEALTHY, UNKNOWN)),
    }


def _pending(now: Any, user: Any) -> dict[str, Any]:
    live = Q(state=Override.State.PROPOSED, expires_at__gt=now)
    mine = Q(proposed_by_id=getattr(user, "pk", None))
    counts = Override.objects.aggregate(
        pending=Count("id", filter=live),
        for_me=Count("id", filter=live & ~mine),
        failed=Count("id", filter=Q(state=Override.State.APPROVED) & ~Q(apply_error="")),
    )
    return {
        "pending_overrides": counts["pending"],
        "pending_for_me": counts["for_me"],
        "failed_overrides": counts["failed"],
    }
