"""What a run covers: its documents, the fields it reads of them, the settings it runs with."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from connectors.models import Connection
from reconciliation import rules
from sync.models import CreditNote, Invoice, ObjectType, Payment, SummaryPosting, SyncProfile

MODELS: dict[str, Any] = {
    ObjectType.INVOICE: Invoice,
    ObjectType.CREDIT_NOTE: CreditNote,
    ObjectType.PAYMENT: Payment,
}
DATE_FIELD = {
    ObjectType.INVOICE: "issue_date",
    ObjectType.CREDIT_NOTE: "issue_date",
    ObjectType.PAYMENT: "transaction_date",
}
_COMMON = (
    "id",
    "currency",
    "status",
    "source_connection_id",
    "created_at",
    "customer__email",
    "customer__name",
)
FIELDS = {
    ObjectType.INVOICE: (
        *_COMMON,
        "number",
        "total",
        "tax_total",
        "amount_paid",
        "amount_due",
        "issue_date",
        "due_date",
        "exchange_rate",
    ),
    ObjectType.CREDIT_NOTE: (*_COMMON, "number", "total", "tax_total", "remaining_credit", "issue_date"),
    ObjectType.PAYMENT: (
        *_COMMON,
        "reference",
        "amount",
        "transaction_date",
        "processor_transaction_id",
    ),
}
# read as well where a daily-summary profile sends the documents: what says whether a summary is current
SUMMARY_FIELDS = ("row_version", "updated_at")
# stored with 4 places for every currency: compared and shown at the currency's minor unit, as copies are
MONEY_FIELDS = {"total", "tax_total", "amount_paid", "amount_due", "remaining_credit", "amount"}
_SNAPSHOT_KEYS = {
    object_type: [name for name in names if name not in _COMMON or name in ("currency", "status")]
    for object_type, names in FIELDS.items()
}
_DAYS = {"issue_date", "due_date", "transaction_date"}
# per object type: (money, date, other) names, turned into the snapshot form (sync/snapshots.py) so a copy
# holding the same values compares equal as strings
FORMS = {
    object_type: (
        [n for n in names if n in MONEY_FIELDS],
        [n for n in names if n in _DAYS],
        [n for n in names if n not in MONEY_FIELDS and n not in _DAYS],
    )
    for object_type, names in _SNAPSHOT_KEYS.items()
}
SUMMARY_TYPES = {kind: object_type for object_type, kind in rules.SUMMARY_KINDS.items()}


def tolerances() -> rules.Tolerances:
    def number(name: str, default: str) -> Decimal:
        return Decimal(str(getattr(settings, name, default)))

    return rules.Tolerances(
        amount=number("RECONCILIATION_AMOUNT_TOLERANCE", "0.01"),
        fx_percent=number("RECONCILIATION_FX_TOLERANCE_PERCENT", "0.5"),
        date_days=int(getattr(settings, "RECONCILIATION_DATE_TOLERANCE_DAYS", 0)),
        medium_amount=number("RECONCILIATION_SEVERITY_MEDIUM_AMOUNT", "100"),
        high_amount=number("RECONCILIATION_SEVERITY_HIGH_AMOUNT", "1000"),
        critical_amount=number("RECONCILIATION_SEVERITY_CRITICAL_AMOUNT", "10000"),
        base_currency=settings.BASE_CURRENCY,
    )


def page_size() -> int:
    return int(getattr(settings, "RECONCILIATION_PAGE_SIZE", 2000))


def summary_mode(profile: SyncProfile) -> bool:
    return profile.posting_mode == SyncProfile.PostingMode.DAILY_SUMMARY


@dataclass
class Scope:
    profile: SyncProfile | None
    object_types: list[str]
    document: tuple[str, int] | None
    # enabled profiles by source connection: where each document is expected to have a copy
    expecting: dict[int, list[SyncProfile]]
    names: dict[int, str]
    missing_before: Any  # documents created after this are not expected anywhere yet
    # daily summaries: the kinds whose posted summaries are checked, and the newest day whose documents
    # are expected in one (closed, plus the missing grace period)
    summary_kinds: list[str]
    summaries_due: date

    def connections(self) -> list[int] | None:
        """Connections whose exceptions this run may judge (None: any)."""
        if self.profile is None:
            return None
        return [self.profile.source_id, self.profile.destination_id]

    def summary_profiles(self, object_type: str) -> list[SyncProfile]:
        """The daily-summary profiles in scope that post this object type."""
        return [
            profile
            for profiles in self.expecting.values()
            for profile in profiles
            if summary_mode(profile) and object_type in (profile.object_types or [])
        ]

    def fields(self, object_type: str) -> tuple[str, ...]:
        names = FIELDS[object_type]
        return (*names, *SUMMARY_FIELDS) if self.summary_profiles(object_type) else names


def scope_build(
    profile: SyncProfile | None, object_types: list[str] | None, document: tuple[str, int] | None
) -> Scope:
    from sync.summary import summary_last_closed_day

    wanted = list(object_types or MODELS)
    unknown = [t for t in wanted if t not in MODELS]
    if unknown:
        raise ValueError(f"object_types: {unknown} cannot be reconciled; use {sorted(MODELS)}")
    if profile is not None:
        wanted = [t for t in wanted if t in (profile.object_types or [])]
        profiles = [profile]
    else:
        profiles = list(SyncProfile.objects.filter(enabled=True))
    summary_kinds = [rules.SUMMARY_KINDS[t] for t in wanted]
    if document is not None:
        object_type, object_id = document
        if object_type in SUMMARY_TYPES:
            if not SummaryPosting.objects.filter(pk=object_id, kind=object_type).exists():
                raise ValueError(f"document: no {object_type} with id {object_id}")
            summary_kinds = [object_type] if SUMMARY_TYPES[object_type] in wanted else []
            wanted = []
        else:
            if object_type not in MODELS:
                known = sorted([*MODELS, *SUMMARY_TYPES])
                raise ValueError(f"document: {object_type!r} cannot be reconciled; use {known}")
            if not MODELS[object_type].objects.filter(pk=object_id).exists():
                raise ValueError(f"document: no {object_type} with id {object_id}")
            wanted = [object_type] if object_type in wanted else []
            summary_kinds = []
    expecting: dict[int, list[SyncProfile]] = defaultdict(list)
    for item in profiles:
        expecting[item.source_id].append(item)
    grace = timedelta(minutes=int(getattr(settings, "RECONCILIATION_MISSING_AFTER_MINUTES", 60)))
    now = timezone.now()
    return Scope(
        profile=profile,
        object_types=wanted,
        document=document,
        expecting=dict(expecting),
        names=dict(Connection.objects.values_list("pk", "name")),
        missing_before=now - grace,
        summary_kinds=summary_kinds,
        summaries_due=summary_last_closed_day(now - grace),
    )


def documents(scope: Scope, object_type: str) -> Any:
    queryset = MODELS[object_type].objects.all()
    if scope.profile is not None:
        queryset = queryset.filter(source_connection_id=scope.profile.source_id)
    if scope.document is not None:
        queryset = queryset.filter(pk=scope.document[1])
    return queryset


def pages(queryset: Any, fields: tuple[str, ...], size: int) -> Iterator[list[dict[str, Any]]]:
    """Keyset pages of plain rows: never a list of every row."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk").values(*fields)[:size])
        if not page:
            return
        yield page
        last = page[-1]["id"]


def source_duplicates(scope: Scope, object_type: str) -> dict[tuple[int, str], list[int]]:
    """(source connection, key) -> ids, for keys that came more than once from one source: the number,
    for payments the processor transaction id (rules.SOURCE_KEY). One grouped query for the whole run;
    the result holds only the duplicates. Payments that failed or were voided count no more."""
    model = MODELS[object_type]
    key = rules.SOURCE_KEY[object_type]
    queryset = documents(scope, object_type)
    if scope.document is not None:
        value = model.objects.filter(pk=scope.document[1]).values_list(key, flat=True)
        queryset = model.objects.filter(**{f"{key}__in": value})
    queryset = queryset.exclude(**{key: ""}).exclude(source_connection=None)
    if object_type == ObjectType.PAYMENT:
        queryset = queryset.exclude(status__in=[Payment.Status.VOID, Payment.Status.FAILED])
    twice = queryset.values("source_connection_id", key).annotate(n=Count("id")).filter(n__gt=1).order_by()
    result: dict[tuple[int, str], list[int]] = {}
    for row in twice:
        ids = queryset.filter(source_connection_id=row["source_connection_id"], **{key: row[key]})
        result[(row["source_connection_id"], row[key])] = sorted(ids.values_list("pk", flat=True))
    return result
