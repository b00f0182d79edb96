"""Composing daily summaries: which documents belong in which summary, kept in step as they change."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery

from reconciliation.models import ReconciliationException
from reconciliation.services import exception_fingerprint, exception_record
from sync import mapping
from sync import push as pushing
from sync.models import (
    Binding,
    ObjectType,
    Payment,
    PushOperation,
    SummaryMember,
    SummaryPosting,
    SyncProfile,
)
from sync.summary.base import KIND_OF, NOT_SALES, ExceptionKind, summary_last_closed_day, summary_number


def _eligible(
    profile: SyncProfile, object_type: str, *, last_day: date, date_range: tuple[date, date] | None
) -> Any:
    """The source's documents that belong in a summary of a closed day."""
    model = pushing.MODELS[object_type]
    field_name = pushing.DATE_FIELDS[object_type]
    queryset = model.objects.filter(
        source_connection_id=profile.source_id, **{f"{field_name}__lte": last_day}
    )
    if date_range is not None:
        queryset = queryset.filter(**{f"{field_name}__range": date_range})
    elif profile.cutover_date:
        queryset = queryset.filter(**{f"{field_name}__gte": profile.cutover_date})
    if object_type == ObjectType.PAYMENT:
        queryset = queryset.filter(status=Payment.Status.COMPLETED)
    else:
        queryset = queryset.exclude(status__in=NOT_SALES)
    # a document the destination already holds one by one (pushed before the profile changed mode) is
    # booked already: summing it again would count it twice
    single = Binding.objects.filter(
        connection_id=profile.destination_id, object_type=object_type, object_id=OuterRef("pk")
    )
    return queryset.exclude(Exists(single))


def _unposted(profile: SyncProfile, kind: str) -> Any:
    """Summaries the destination does not have at their current version (or has, and should not)."""
    bound = Binding.objects.filter(
        connection_id=profile.destination_id, object_type=kind, object_id=OuterRef("pk")
    )
    return (
        SummaryPosting.objects.filter(profile=profile, kind=kind)
        .annotate(
            bound_id=Subquery(bound.values("pk")[:1]),
            pushed=Subquery(bound.values("document_version")[:1]),
            gone=Subquery(bound.values("remote_deleted")[:1]),
        )
        .filter(
            Q(bound_id__isnull=True, member_count__gt=0)
            | Q(bound_id__isnull=False, gone=False)
            & (Q(pushed__isnull=True) | Q(pushed__lt=F("row_version")))
        )
    )


def _days_to_compose(
    profile: SyncProfile, object_type: str, *, last_day: date, date_range: tuple[date, date] | None
) -> list[date]:
    """Days whose summaries may have to change: a document not yet in a summary, a member at another
    version than its summary counted (changed, moved, voided), or a summary still to post (a mapping
    added since may place its members differently)."""
    model = pushing.MODELS[object_type]
    field_name = pushing.DATE_FIELDS[object_type]
    members = SummaryMember.objects.filter(profile=profile, object_type=object_type)
    counted = members.filter(object_id=OuterRef("pk")).values("document_version")[:1]
    fresh = (
        _eligible(profile, object_type, last_day=last_day, date_range=date_range)
        .annotate(counted=Subquery(counted))
        .filter(Q(counted__isnull=True) | ~Q(counted=F("row_version")))
    )
    days = set(fresh.values_list(field_name, flat=True).distinct())
    current = model.objects.filter(pk=OuterRef("object_id")).values("row_version")[:1]
    stale = members.annotate(current=Subquery(current)).filter(
        Q(current__isnull=True) | ~Q(current=F("document_version"))
    )
    days |= set(stale.values_list("summary__day", flat=True).distinct())
    days |= set(_unposted(profile, KIND_OF[object_type]).values_list("day", flat=True).distinct())
    if date_range is not None:
        days = {day for day in days if date_range[0] <= day <= date_range[1]}
    return sorted(day for day in days if day <= last_day)


def _with_related(object_type: str, queryset: Any) -> Any:
    if object_type == ObjectType.PAYMENT:
        return queryset.prefetch_related("allocations__invoice")
    return queryset.select_related("customer").prefetch_related("lines")


def _day_groups(
    profile: SyncProfile,
    object_type: str,
    day: date,
    table: mapping.MappingTable,
    *,
    last_day: date,
    date_range: tuple[date, date] | None,
) -> tuple[dict[tuple[str, str], list[Any]], list[Any]]:
    """The day's members by (currency, deposit account), and the payments applied to no invoice (left
    out: an unapplied credit in the books is what finance teams chase, so they get an exception)."""
    field_name = pushing.DATE_FIELDS[object_type]
    documents = _with_related(
        object_type,
        _eligible(profile, object_type, last_day=last_day, date_range=date_range).filter(**{field_name: day}),
    ).order_by("pk")
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    unmatched = []
    for document in documents:
        deposit = ""
        if object_type == ObjectType.PAYMENT:
            if not document.allocations.all():
                unmatched.append(document)
                continue
            deposit, _ = mapping.deposit_account(document.method, table)
        groups[(document.currency, deposit)].append(document)
    return groups, unmatched


def _members_hash(documents: Iterable[Any]) -> str:
    text = ",".join(f"{d.pk}:{d.row_version}" for d in sorted(documents, key=lambda d: d.pk))
    return hashlib.sha256(text.encode()).hexdigest()


def _totals(object_type: str, documents: Sequence[Any]) -> tuple[Decimal, Decimal, Decimal]:
    zero = Decimal(0)
    if object_type == ObjectType.PAYMENT:
        applied = sum((a.amount for d in documents for a in d.allocations.all()), zero)
        return applied, zero, applied
    lines = [line for d in documents for line in d.lines.all()]
    return (
        sum((line.subtotal for line in lines), zero),
        sum((line.tax_amount for line in lines), zero),
        sum((line.total for line in lines), zero),
    )


def summaries_compose(
    profile: SyncProfile,
    object_type: str,
    table: mapping.MappingTable,
    *,
    last_day: date | None = None,
    date_range: tuple[date, date] | None = None,
    job: Any = None,
) -> list[date]:
    """Bring the summaries of every day that may have changed in line with their documents, one day per
    transaction. Returns the days composed."""
    last_day = last_day or summary_last_closed_day()
    days = _days_to_compose(profile, object_type, last_day=last_day, date_range=date_range)
    for day in days:
        _day_compose(profile, object_type, day, table, last_day=last_day, date_range=date_range, job=job)
    return days


def _day_compose(
    profile: SyncProfile,
    object_type: str,
    day: date,
    table: mapping.MappingTable,
    *,
    last_day: date,
    date_range: tuple[date, date] | None,
    job: Any,
) -> None:
    kind = KIND_OF[object_type]
    groups, unmatched = _day_groups(
        profile, object_type, day, table, last_day=last_day, date_range=date_range
    )
    with transaction.atomic():
        postings = {
            (p.currency, p.deposit_account): p
            for p in SummaryPosting.objects.select_for_update().filter(profile=profile, kind=kind, day=day)
        }
        wanted: dict[int, tuple[SummaryPosting, Any]] = {}
        for (currency, deposit), documents in groups.items():
            posting = postings.get((currency, deposit))
            if posting is None:
                posting = SummaryPosting.objects.create(
                    profile=profile,
                    kind=kind,
                    day=day,
                    currency=currency,
                    deposit_account=deposit,
                    number=summary_number(kind, day, currency, deposit, table),
                )
                postings[(currency, deposit)] = posting
            for document in documents:
                wanted[document.pk] = (posting, document)
        _members_write(profile, object_type, list(postings.values()), wanted)
        for (currency, deposit), posting in postings.items():
            documents = groups.get((currency, deposit), [])
            new_hash = _members_hash(documents) if documents else ""
            if new_hash == posting.members_hash:
                continue
            if (
                posting.members_hash
                or Binding.objects.filter(
                    connection_id=profile.destination_id, object_type=kind, object_id=posting.pk
                ).exists()
            ):
                posting.row_version += 1
            posting.members_hash = new_hash
            posting.member_count = len(documents)
            posting.subtotal, posting.tax_total, posting.total = _totals(object_type, documents)
            posting.save()
        for posting in postings.values():
            if (
                not posting.member_count
                and not Binding.objects.filter(
                    connection_id=profile.destination_id, object_type=kind, object_id=posting.pk
                ).exists()
            ):
                # never posted and nothing left in it: nothing to undo anywhere
                PushOperation.objects.filter(
                    profile=profile, object_type=kind, object_id=posting.pk, attempts=0
                ).delete()
                if not PushOperation.objects.filter(
                    profile=profile, object_type=kind, object_id=posting.pk
                ).exists():
                    posting.delete()
    for payment in unmatched:
        _unmatched_exception(profile, payment, job)


def _members_write(
    profile: SyncProfile,
    object_type: str,
    postings: Sequence[SummaryPosting],
    wanted: dict[int, tuple[SummaryPosting, Any]],
) -> None:
    """Membership as `wanted` says (document id -> summary, document): moved members follow their
    document, members no longer in any of the day's summaries leave them."""
    rows = {
        m.object_id: m
        for m in SummaryMember.objects.filter(
            profile=profile, object_type=object_type, object_id__in=list(wanted)
        )
    }
    changed, fresh = [], []
    for object_id, (posting, document) in wanted.items():
        row = rows.get(object_id)
        if row is None:
            fresh.append(
                SummaryMember(
                    summary=posting,
                    profile=profile,
                    object_type=object_type,
                    object_id=object_id,
                    document_version=document.row_version,
                )
            )
        elif row.summary_id != posting.pk or row.document_version != document.row_version:
            row.summary, row.document_version = posting, document.row_version
            changed.append(row)
    SummaryMember.objects.filter(summary__in=[p.pk for p in postings]).exclude(
        object_id__in=list(wanted)
    ).delete()
    if changed:
        SummaryMember.objects.bulk_update(changed, ["summary", "document_version"])
    if fresh:
        SummaryMember.objects.bulk_create(fresh)


def _unmatched_exception(profile: SyncProfile, payment: Payment, job: Any) -> None:
    exception_record(
        kind=ExceptionKind.UNMATCHED_PAYMENT,
        fingerprint=exception_fingerprint(ExceptionKind.UNMATCHED_PAYMENT, profile.pk, "payment", payment.pk),
        title=f"Payment {payment.reference} matches no invoice; left out of its daily summary payment",
        message="Apply it to an invoice at the source, or propose an override; the next run adds it.",
        severity=ReconciliationException.Severity.HIGH,
        connection=profile.source,
        job=job,
        object_type=ObjectType.PAYMENT,
        object_id=payment.pk,
        document_number=payment.reference,
        currency=payment.currency,
        amount_at_risk=payment.amount,
    )
