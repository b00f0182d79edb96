"""Daily summaries: a profile in daily-summary mode posts one document per day and currency, not one per sale.

What A2X and Link My Books do for shops and gateways: the books get, per closed day and currency,
- one summary invoice whose lines are the day's invoice lines grouped by what the destination books
  them to (revenue account or item, tax code, tax rate), each group's amounts the exact sum of its lines;
- one summary credit note of the day's credit notes, grouped the same way;
- one summary payment per deposit account (the payment method's mapping), applied to the summary
  invoices that hold the invoices its payments paid.

Rules (docs/sync.md, "Daily summaries", says why):
- A document belongs to the day of its issue date (payments: transaction date). A day is posted only once
  it is closed: after midnight in `settings.TIME_ZONE` plus `SYNC_SUMMARY_GRACE_MINUTES`.
- Members: live documents of the profile's source (invoices and credit notes neither draft, void nor
  deleted; completed payments applied to an invoice), not before the cut-over date, and not already in the
  destination one by one. A document is in at most one summary per profile (`SummaryMember`).
- A member that changes after its day was posted (amount, date, void) changes its summary's version: the
  summary is re-posted as an update carrying the remote version, a conflict if the destination changed it;
  a summary left with no members is voided there.
- A summary is complete or not posted: a member the mapping cannot place holds its summary back, with a
  `mapping_missing` exception naming the member and the value. Other days and currencies go on.
- The customer of every summary is the destination customer mapped from the source value `*summary*`.
- Exactly once as any push: a `PushOperation` per summary version, whose deterministic number
  ("{prefix}DS-2026-11-20-USD{suffix}") is what the lookup before a create finds it by.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from connectors.base import (
    AllocationRecord,
    ConnectorError,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    NotFoundError,
    PaymentRecord,
    PushContext,
    RemoteRef,
    ValidationError,
)
from connectors.money import currency_exponent
from reconciliation.models import ReconciliationException
from reconciliation.services import exception_fingerprint, exception_record, exceptions_resolve_by_system
from sync import mapping
from sync import push as pushing
from sync.models import (
    Binding,
    CreditNote,
    Invoice,
    ObjectType,
    Payment,
    PushOperation,
    SummaryMember,
    SummaryPosting,
    SyncProfile,
)
from sync.preview import PreviewItem

Kind = SummaryPosting.Kind
ExceptionKind = ReconciliationException.Kind
Op = PushOperation.Operation
State = PushOperation.State
SUMMARY_CUSTOMER = "*summary*"  # the customer mapping row's source value for summaries
KIND_OF = {
    ObjectType.INVOICE: Kind.INVOICE,
    ObjectType.CREDIT_NOTE: Kind.CREDIT_NOTE,
    ObjectType.PAYMENT: Kind.PAYMENT,
}
TYPE_OF = {kind: object_type for object_type, kind in KIND_OF.items()}
PREFIX = {Kind.INVOICE: "DS", Kind.CREDIT_NOTE: "DSC", Kind.PAYMENT: "DSP"}
NOT_SALES = ("draft", "void", "deleted")


def summary_mode(profile: SyncProfile) -> bool:
    return profile.posting_mode == SyncProfile.PostingMode.DAILY_SUMMARY


# --- which day, and when it is closed -----------------------------------------------------------------
def grace_minutes() -> int:
    return int(settings.SYNC_SUMMARY_GRACE_MINUTES)


def summary_last_closed_day(now: datetime | None = None) -> date:
    """The newest day that may be posted: day D closes at midnight after it, local time, plus the grace
    period (late webhooks and pulls of the day land in it)."""
    local = timezone.localtime(now or timezone.now()) - timedelta(minutes=grace_minutes())
    return local.date() - timedelta(days=1)


def summary_number(
    kind: str, day: date, currency: str, deposit_account: str, table: mapping.MappingTable
) -> str:
    """The summary's number in the destination, and its lookup reference: the same inputs, the same
    number, so a create after a crash finds what an earlier attempt made."""
    body = f"{PREFIX[kind]}-{day.isoformat()}-{currency}"
    if deposit_account:
        body = f"{body}-{deposit_account}"
    return mapping.document_number(body, table)


# --- membership -----------------------------------------------------------------------------------------
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


# --- rendering ----------------------------------------------------------------------------------------
class MembersBlocked(Exception):
    """Members the mapping cannot place: the summary waits for them."""

    def __init__(self, problems: dict[Any, list[mapping.MappingProblem]]) -> None:
        self.problems = problems
        first_member, first = next(iter(problems.items()))
        super().__init__(f"{_label(first_member)}: {first[0].message}")


@dataclass
class Rendered:
    record: Any
    context: PushContext
    payload: Any
    groups: list[dict[str, Any]] = field(default_factory=list)


def _label(document: Any) -> str:
    object_type = {Invoice: ObjectType.INVOICE, CreditNote: ObjectType.CREDIT_NOTE}.get(
        type(document), ObjectType.PAYMENT
    )
    return pushing.document_label(object_type, document)


def _customer(table: mapping.MappingTable, currency: str, where: str) -> str:
    """The destination customer summaries in `currency` are posted to: the row "*summary*:EUR" for one
    currency (QuickBooks customers each have one currency), else "*summary*"."""
    rows = table.rows.get("customer", {})
    target = rows.get(f"{SUMMARY_CUSTOMER}:{currency.lower()}") or rows.get(SUMMARY_CUSTOMER, "")
    if not target:
        raise mapping.MappingBlocked(
            [
                mapping.MappingProblem(
                    "customer",
                    SUMMARY_CUSTOMER,
                    "summary",
                    f"no customer for daily summaries in {currency}: add a Customer row with source value "
                    f"{SUMMARY_CUSTOMER!r} (or {SUMMARY_CUSTOMER + ':' + currency!r}) and the destination "
                    f"customer's id to the mapping set ({where})",
                )
            ]
        )
    known = {c.id for c in table.customers}
    if known and target not in known:
        raise mapping.MappingBlocked(
            [
                mapping.MappingProblem(
                    "customer",
                    SUMMARY_CUSTOMER,
                    "summary",
                    f"the customer mapped for daily summaries ({target!r}) is not in the destination "
                    f"({where})",
                )
            ]
        )
    return target


def _sales_lines(
    documents: Sequence[Any], table: mapping.MappingTable, currency: str, day: date
) -> tuple[tuple[LineRecord, ...], tuple[dict[str, str], ...], list[dict[str, Any]]]:
    """The members' lines summed per destination placement (account or item, tax code) and tax rate."""
    problems: dict[Any, list[mapping.MappingProblem]] = {}
    sums: dict[tuple[tuple[tuple[str, str], ...], Decimal | None], list[Any]] = {}
    for document in documents:
        lines = list(document.lines.all())
        mapped, line_problems = mapping.line_context(lines, table)
        if line_problems:
            problems[document] = line_problems
            continue
        for line, entry in zip(lines, mapped, strict=True):
            key = (tuple(sorted(entry.items())), line.tax_rate)
            group = sums.setdefault(key, [Decimal(0), Decimal(0), Decimal(0), 0])
            group[0] += line.subtotal
            group[1] += line.tax_amount
            group[2] += line.total
            group[3] += 1
    if problems:
        raise MembersBlocked(problems)
    exponent = Decimal(1).scaleb(-currency_exponent(currency))
    records, contexts, shown = [], [], []
    for index, ((entry, rate), (subtotal, tax, total, count)) in enumerate(
        sorted(sums.items(), key=lambda item: (item[0][0], str(item[0][1]))), start=1
    ):
        placed = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in entry) or "unmapped"
        description = f"Sales {day.isoformat()} ({placed}): {count} line{'s' if count != 1 else ''}"
        subtotal, tax, total = (v.quantize(exponent) for v in (subtotal, tax, total))
        records.append(
            LineRecord(
                description=description,
                quantity=Decimal(1),
                unit_price=subtotal,
                subtotal=subtotal,
                tax_amount=tax,
                total=total,
                tax_rate=rate,
                line_number=index,
            )
        )
        contexts.append(dict(entry))
        shown.append(
            {
                **dict(entry),
                "tax_rate": mapping.tax_key(rate),
                "lines": count,
                "subtotal": str(subtotal),
                "tax": str(tax),
            }
        )
    return tuple(records), tuple(contexts), shown


def _summary_customer() -> CustomerRecord:
    return CustomerRecord(name="Daily sales summary")


def _memo(posting: SummaryPosting, documents: Sequence[Any]) -> str:
    numbers = [getattr(d, "number", "") or getattr(d, "reference", "") for d in documents]
    shown = ", ".join(numbers[:20]) + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")
    return f"Daily summary {posting.number} of {len(numbers)}: {shown}"[:4000]


def summary_render(pusher: pushing.Pusher, posting: SummaryPosting, documents: Sequence[Any]) -> Rendered:
    """The summary's record, context and payload, or MappingBlocked (the summary itself) or MembersBlocked
    (members the mapping cannot place)."""
    table = pusher.table
    where = pushing.mapping_url(pusher.profile)
    object_type = TYPE_OF[posting.kind]
    customer_id = _customer(table, posting.currency, where)
    if object_type == ObjectType.PAYMENT:
        record, context = _payment_record(pusher, posting, documents, customer_id)
        groups: list[dict[str, Any]] = [
            {"invoice": a.invoice_number, "amount": str(a.amount)} for a in record.allocations
        ]
    else:
        lines, placed, groups = _sales_lines(documents, table, posting.currency, posting.day)
        subtotal = sum((line.subtotal for line in lines), Decimal(0))
        tax = sum((line.tax_amount for line in lines), Decimal(0))
        total = sum((line.total for line in lines), Decimal(0))
        common = {
            "external_id": str(posting.pk or ""),
            "number": posting.number,
            "customer": _summary_customer(),
            "issue_date": posting.day,
            "currency": posting.currency,
            "status": "open",
            "lines": lines,
            "subtotal": subtotal,
            "tax_total": tax,
            "total": total,
            "memo": _memo(posting, documents),
        }
        if object_type == ObjectType.INVOICE:
            record = InvoiceRecord(**common, amount_paid=Decimal(0), amount_due=total, due_date=posting.day)
        else:
            record = CreditNoteRecord(**common, remaining_credit=total)
        context = PushContext(
            reference=posting.number, number=posting.number, customer_id=customer_id, lines=placed
        )
    try:
        payload = pusher.connector.render(object_type, record, context)
    except ValidationError as exc:
        if exc.field == "deposit_account":
            problems = {
                d: [
                    mapping.MappingProblem(
                        "payment_method",
                        d.method or "(empty)",
                        "payment method",
                        f"no deposit account mapped for payment method {d.method or '(empty)'!r}",
                    )
                ]
                for d in documents
            }
            raise MembersBlocked(problems) from exc
        problem = mapping.MappingProblem(exc.field or "field", str(exc.value), "summary", str(exc))
        raise mapping.MappingBlocked([problem]) from exc
    return Rendered(record, context, payload, groups)


def _payment_record(
    pusher: pushing.Pusher, posting: SummaryPosting, documents: Sequence[Any], customer_id: str
) -> tuple[PaymentRecord, PushContext]:
    """Applied to the summary invoices holding the invoices its payments paid, one allocation each."""
    profile = pusher.profile
    invoice_pks = {a.invoice_id for d in documents for a in d.allocations.all()}
    holders = {
        m.object_id: m.summary
        for m in SummaryMember.objects.filter(
            profile=profile, object_type=ObjectType.INVOICE, object_id__in=invoice_pks
        ).select_related("summary")
    }
    bound = dict(
        Binding.objects.filter(
            connection_id=profile.destination_id,
            object_type=Kind.INVOICE,
            object_id__in={s.pk for s in holders.values()},
            remote_deleted=False,
        ).values_list("object_id", "external_id")
    )
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    invoice_ids: dict[str, str] = {}
    problems: dict[Any, list[mapping.MappingProblem]] = {}
    for document in documents:
        for allocation in document.allocations.all():
            number = allocation.invoice.number
            holder = holders.get(allocation.invoice_id)
            if holder is None:
                message = (
                    f"invoice {number} is in no daily summary of this profile (before the cut-over date, "
                    "not from this source, or not closed yet); the payment's summary waits for it"
                )
            elif holder.pk not in bound:
                message = f"invoice {number}'s summary {holder.number} is not in the destination yet"
            else:
                amounts[holder.number] += allocation.amount
                invoice_ids[holder.number] = bound[holder.pk]
                continue
            problems.setdefault(document, []).append(
                mapping.MappingProblem("invoice", number, "allocation", message)
            )
    if problems:
        raise MembersBlocked(problems)
    allocations = tuple(
        AllocationRecord(invoice_number=number, amount=amount) for number, amount in sorted(amounts.items())
    )
    record = PaymentRecord(
        external_id=str(posting.pk or ""),
        reference=posting.number,
        customer=None,
        transaction_date=posting.day,
        currency=posting.currency,
        amount=sum((a.amount for a in allocations), Decimal(0)),
        allocations=allocations,
        memo=_memo(posting, documents),
    )
    context = PushContext(
        reference=posting.number,
        number=posting.number,
        customer_id=customer_id,
        deposit_account=posting.deposit_account,
        invoice_ids=invoice_ids,
    )
    return record, context


# --- pushing ------------------------------------------------------------------------------------------
class SummaryConnector:
    """The destination's connector as the outbox protocol sees a summary: the summary kind is the object
    type of its operations and bindings (so they never meet a single document's), the connector is
    called with the document type it is."""

    def __init__(self, connector: Any, record: Any = None, context: PushContext | None = None) -> None:
        self._connector = connector
        self._record = record
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    def supports(self, kind: str, operation: str) -> bool:
        return self._connector.supports(TYPE_OF.get(kind, kind), operation)

    def find_by_reference(self, kind: str, reference: str) -> Any:
        return self._connector.find_by_reference(TYPE_OF[kind], reference)

    def fetch(self, kind: str, external_id: str) -> Any:
        return self._connector.fetch(TYPE_OF[kind], external_id)

    def create(self, kind: str, payload: Any, *, idempotency_key: str) -> Any:
        if TYPE_OF[kind] == ObjectType.PAYMENT:
            return self._connector.record_payment(
                self._record, self._context, idempotency_key=idempotency_key
            )
        return self._connector.create(TYPE_OF[kind], payload, idempotency_key=idempotency_key)

    def update(
        self, kind: str, external_id: str, payload: Any, *, remote_version: str, idempotency_key: str
    ) -> Any:
        return self._connector.update(
            TYPE_OF[kind],
            external_id,
            payload,
            remote_version=remote_version,
            idempotency_key=idempotency_key,
        )

    def void(self, kind: str, external_id: str, *, remote_version: str, idempotency_key: str) -> Any:
        return self._connector.void(
            TYPE_OF[kind], external_id, remote_version=remote_version, idempotency_key=idempotency_key
        )

    def delete(self, kind: str, external_id: str, *, remote_version: str, idempotency_key: str) -> Any:
        return self._connector.delete(
            TYPE_OF[kind], external_id, remote_version=remote_version, idempotency_key=idempotency_key
        )


def _members(posting: SummaryPosting) -> list[Any]:
    object_type = TYPE_OF[posting.kind]
    ids = SummaryMember.objects.filter(summary=posting).values("object_id")
    return list(
        _with_related(object_type, pushing.MODELS[object_type].objects.filter(pk__in=ids)).order_by("pk")
    )


def summary_operation(posting: SummaryPosting, binding: Binding | None) -> str | None:
    if binding is None:
        return Op.CREATE if posting.member_count else None
    if binding.remote_deleted:
        return None
    return Op.UPDATE if posting.member_count else Op.VOID


def _member_fingerprints(posting: SummaryPosting, documents: Iterable[Any]) -> list[str]:
    object_type = TYPE_OF[posting.kind]
    return [
        exception_fingerprint(ExceptionKind.MAPPING_MISSING, posting.profile_id, object_type, d.pk)
        for d in documents
    ] + [
        exception_fingerprint(
            ExceptionKind.MAPPING_MISSING, posting.profile_id, "summary", f"customer:{posting.currency}"
        )
    ]


def _members_blocked(
    pusher: pushing.Pusher, op: PushOperation, posting: SummaryPosting, exc: MembersBlocked
) -> None:
    pushing._settle(op, State.BLOCKED, str(exc))
    where = pushing.mapping_url(pusher.profile)
    object_type = TYPE_OF[posting.kind]
    for document, problems in exc.problems.items():
        exception_record(
            kind=ExceptionKind.MAPPING_MISSING,
            fingerprint=exception_fingerprint(
                ExceptionKind.MAPPING_MISSING, posting.profile_id, object_type, document.pk
            ),
            title=f"{_label(document)} holds back daily summary {posting.number}: {problems[0].message}",
            message=(
                f"{'; '.join(p.message for p in problems)}. A summary is posted complete or not at all: "
                f"add the mapping at {where} (or correct the document at the source); the summary goes "
                "through on the next run."
            ),
            severity=ReconciliationException.Severity.MEDIUM,
            connection=pusher.profile.destination,
            job=pusher.job,
            object_type=object_type,
            object_id=document.pk,
            document_number=getattr(document, "number", "") or getattr(document, "reference", ""),
            currency=document.currency,
            amount_at_risk=getattr(document, "total", None) or getattr(document, "amount", None),
            details={
                "summary": posting.pk,
                "summary_number": posting.number,
                "problems": [p.as_dict() for p in problems],
                "mapping_url": where,
                "operation": op.pk,
            },
        )
    pusher.report.count("blocked")


def _summary_blocked(
    pusher: pushing.Pusher, op: PushOperation, posting: SummaryPosting, exc: mapping.MappingBlocked
) -> None:
    if exc.problems[0].value == SUMMARY_CUSTOMER:
        # one finding for the profile, however many summaries wait for it
        pushing._settle(op, State.BLOCKED, str(exc))
        where = pushing.mapping_url(pusher.profile)
        exception_record(
            kind=ExceptionKind.MAPPING_MISSING,
            fingerprint=exception_fingerprint(
                ExceptionKind.MAPPING_MISSING, posting.profile_id, "summary", f"customer:{posting.currency}"
            ),
            title=f"{posting.currency} daily summaries of {pusher.profile} have no customer to post to",
            message=f"{exc}. The summaries go through on the next run.",
            severity=ReconciliationException.Severity.MEDIUM,
            connection=pusher.profile.destination,
            job=pusher.job,
            details={"problems": [p.as_dict() for p in exc.problems], "mapping_url": where},
        )
        pusher.report.count("blocked")
        return
    pusher.blocked(op, posting, exc)


def _matches(sent: Any, raw: Any) -> bool:
    """The destination's copy carries what was sent (the keys sent; a list the destination extends with
    lines of its own, such as QuickBooks' subtotal line, still matches)."""
    differences = mapping.payload_diff(pushing.comparable(sent), pushing.unwrap(raw))
    return not [d for d in differences if not str(d.get("now", "")).endswith(" items")]


def _landed(connector: SummaryConnector, op: PushOperation) -> RemoteRef | None:
    """Did an update or void whose answer was lost reach the destination? Its copy there is read and
    compared with what was sent."""
    try:
        change = connector.fetch(op.object_type, op.external_id or pushing._bound_id(op))
    except NotFoundError:
        return None
    if op.operation == Op.VOID:
        landed = change.deleted or getattr(change.record, "status", "") in pushing.GONE
    else:
        landed = _matches(op.payload, change.raw)
    if not landed:
        return None
    return RemoteRef(change.external_id, remote_version=change.remote_version, raw=change.raw)


def _version_refreshed(connector: SummaryConnector, posting: SummaryPosting, binding: Binding) -> None:
    """Before an update: a destination copy whose version moved while its content is still what was last
    written (a payment applied to a summary invoice moves QuickBooks' SyncToken) is not a conflict; the
    new version is taken. A copy whose content someone changed keeps the old one, and the update is
    refused as a conflict."""
    try:
        change = connector.fetch(posting.kind, binding.external_id)
    except NotFoundError:
        return
    if not change.remote_version or change.remote_version == binding.remote_version:
        return
    written = (
        PushOperation.objects.filter(
            profile_id=posting.profile_id,
            object_type=posting.kind,
            object_id=posting.pk,
            state=State.SUCCEEDED,
            document_version=binding.document_version,
        )
        .exclude(payload=None)
        .order_by("-pk")
        .first()
    )
    if written is not None and _matches(written.payload, change.raw):
        binding.remote_version = change.remote_version[:100]
        binding.save(update_fields=["remote_version", "last_synced_at"])


def _earlier_settled(connector: SummaryConnector, posting: SummaryPosting, op: PushOperation) -> bool:
    """Settle what an earlier version of the summary sent and never heard back about, before this
    version goes: a create that landed is bound (so this version becomes an update of it, never a
    second create nor a binding of stale content), an update that landed moves the remote version on.
    Returns whether anything was there to settle."""
    earlier = list(
        PushOperation.objects.filter(
            profile_id=posting.profile_id,
            object_type=posting.kind,
            object_id=posting.pk,
            attempts__gt=0,
            state__in=pushing.UNSETTLED,
        )
        .exclude(pk=op.pk)
        .order_by("-document_version", "-pk")
    )
    if not earlier:
        return False
    latest = earlier[0]
    if latest.operation == Op.CREATE:
        found = connector.find_by_reference(posting.kind, posting.number)
    else:
        found = _landed(connector, latest)
    if found is not None:
        pushing._succeed(latest, found)
    PushOperation.objects.filter(pk__in=[e.pk for e in earlier], state__in=pushing.UNSETTLED).update(
        state=State.SUPERSEDED, error="not found in the destination; a later version goes instead"
    )
    return True


def _cannot_update(pusher: pushing.Pusher, posting: SummaryPosting) -> None:
    profile = pusher.profile
    op = pushing._operation(profile, posting.kind, posting, Op.UPDATE, posting.number, pusher.job)
    if op.state in (State.SUCCEEDED, State.FAILED):
        return
    pushing._settle(
        op, State.FAILED, f"{profile.destination} cannot update a {posting.get_kind_display().lower()}"
    )
    pushing._exception(
        op,
        ExceptionKind.SYNC_FAILURE,
        f"{posting} changed after it was posted, and {profile.destination} cannot update it",
        f"Its members changed since it was posted (now {posting.member_count}, total {posting.total} "
        f"{posting.currency}). Correct it in {profile.destination} by hand.",
        document=posting,
    )
    pusher.report.count("failed")


def summary_push(pusher: pushing.Pusher, posting: SummaryPosting) -> None:
    """One summary through the outbox, under the same protocol as a single document."""
    profile = pusher.profile
    pusher.report.seen += 1
    probe = SummaryConnector(pusher.connector)
    for _ in range(2):  # a second pass when settling an earlier version changed what there is to do
        binding = Binding.objects.filter(
            connection_id=profile.destination_id, object_type=posting.kind, object_id=posting.pk
        ).first()
        operation = summary_operation(posting, binding)
        if operation is None:
            pusher.report.count("skipped")
            return
        if operation == Op.UPDATE and not pusher.connector.supports(TYPE_OF[posting.kind], "update"):
            _cannot_update(pusher, posting)
            return
        op = pushing._operation(profile, posting.kind, posting, operation, posting.number, pusher.job)
        if op.state in (State.SUCCEEDED, State.FAILED, State.SUPERSEDED):
            pusher.report.count("skipped" if op.state != State.FAILED else "failed")
            return
        if not _earlier_settled(probe, posting, op):
            break
    op.refresh_from_db()
    if operation == Op.UPDATE and binding is not None and not (op.attempts and op.state in pushing.UNSETTLED):
        _version_refreshed(probe, posting, binding)
    if operation != Op.CREATE and op.attempts and op.state in pushing.UNSETTLED:
        # this very update was sent before and its answer lost: done if it landed
        landed = _landed(probe, op)
        if landed is not None:
            pushing._succeed(op, landed)
            pusher.report.count("updated")
            return
    documents = _members(posting)
    record = context = payload = None
    if operation != Op.VOID:
        try:
            rendered = summary_render(pusher, posting, documents)
        except MembersBlocked as exc:
            _members_blocked(pusher, op, posting, exc)
            return
        except mapping.MappingBlocked as exc:
            _summary_blocked(pusher, op, posting, exc)
            return
        record, context, payload = rendered.record, rendered.context, rendered.payload
    context = context or PushContext(reference=posting.number)
    connector = SummaryConnector(pusher.connector, record, context)
    pushing.execute(
        connector, pushing.Prepared(op, posting, record, context, payload, binding), pusher.report
    )
    op.refresh_from_db(fields=["state"])
    if op.state == State.SUCCEEDED:
        exceptions_resolve_by_system(
            ReconciliationException.objects.filter(fingerprint__in=_member_fingerprints(posting, documents)),
            reason="posted in its daily summary",
        )


def summaries_push(
    pusher: pushing.Pusher,
    *,
    date_range: tuple[date, date] | None = None,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> pushing.PushReport:
    """A push run of a daily-summary profile: compose the closed days that changed, then post every
    summary the destination does not have at its version. Invoices first, then credit notes, then
    payments (which are applied to the summary invoices)."""
    profile = pusher.profile
    last_day = summary_last_closed_day(now)
    wanted = set(profile.object_types or [])
    for object_type in (ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT):
        if object_type not in wanted:
            continue
        summaries_compose(
            profile, object_type, pusher.table, last_day=last_day, date_range=date_range, job=pusher.job
        )
        due = _unposted(profile, KIND_OF[object_type]).filter(day__lte=last_day)
        if date_range is not None:
            due = due.filter(day__range=date_range)
        for posting in due.order_by("day", "currency", "deposit_account"):
            summary_push(pusher, posting)
            if progress is not None:
                progress(1)
    return pusher.report


def summaries_due_count(profile: SyncProfile, *, date_range: tuple[date, date] | None = None) -> int:
    """About how many summaries a run will post (days to compose plus summaries waiting): for progress."""
    last_day = summary_last_closed_day()
    count = 0
    for object_type in (ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT):
        if object_type in (profile.object_types or []):
            count += len(_days_to_compose(profile, object_type, last_day=last_day, date_range=date_range))
    return count


# --- dry run ------------------------------------------------------------------------------------------
def summaries_preview(
    profile: SyncProfile, *, limit: int = 50, now: datetime | None = None
) -> list[PreviewItem]:
    """What a run would post now, summary by summary, without writing anything: days still to compose are
    composed in memory, summaries waiting are rendered from their members."""
    pusher = pushing.Pusher(profile, dry_run=True)
    last_day = summary_last_closed_day(now)
    items: list[PreviewItem] = []
    for object_type in (ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT):
        if object_type not in (profile.object_types or []):
            continue
        kind = KIND_OF[object_type]
        existing = {
            (p.day, p.currency, p.deposit_account): p
            for p in SummaryPosting.objects.filter(profile=profile, kind=kind)
        }
        for day in _days_to_compose(profile, object_type, last_day=last_day, date_range=None):
            groups, _ = _day_groups(
                profile, object_type, day, pusher.table, last_day=last_day, date_range=None
            )
            keys = {(currency, deposit) for currency, deposit in groups} | {
                (c, d) for (when, c, d) in existing if when == day
            }
            for currency, deposit in sorted(keys):
                documents = groups.get((currency, deposit), [])
                posting = existing.get((day, currency, deposit)) or SummaryPosting(
                    profile=profile,
                    kind=kind,
                    day=day,
                    currency=currency,
                    deposit_account=deposit,
                    number=summary_number(kind, day, currency, deposit, pusher.table),
                )
                changed = posting.pk is None or _members_hash(documents) != posting.members_hash
                item = _preview_item(pusher, posting, documents, changed=changed)
                if item is not None:
                    items.append(item)
                if len(items) >= limit:
                    return items
    return items


def _preview_item(
    pusher: pushing.Pusher, posting: SummaryPosting, documents: Sequence[Any], *, changed: bool
) -> PreviewItem | None:
    binding = None
    if posting.pk is not None:
        binding = Binding.objects.filter(
            connection_id=pusher.profile.destination_id, object_type=posting.kind, object_id=posting.pk
        ).first()
        if not changed and binding is not None and binding.document_version == posting.row_version:
            return None
    posting.member_count = len(documents)
    operation = summary_operation(posting, binding)
    if operation is None:
        return None
    item = PreviewItem(
        object_type=posting.kind,
        object_id=posting.pk or 0,
        label=f"{posting} ({len(documents)} documents, {posting.currency})",
        operation=operation,
        destination_id=binding.external_id if binding else "",
        members=[_label(d) for d in documents],
    )
    if operation == Op.VOID:
        item.diff = [{"path": "status", "now": "posted", "after": "void (no members left)"}]
        return item
    try:
        rendered = summary_render(pusher, posting, documents)
    except MembersBlocked as exc:
        item.problems = [
            f"{_label(d)}: {p.message}" for d, problems in exc.problems.items() for p in problems
        ]
        return item
    except mapping.MappingBlocked as exc:
        item.problems = [p.message for p in exc.problems]
        return item
    item.payload, item.groups = rendered.payload, rendered.groups
    if binding is None:
        item.diff = [{"path": "(document)", "now": "not in the destination", "after": "created"}]
        return item
    try:
        change = pusher.connector.fetch(TYPE_OF[posting.kind], binding.external_id)
    except ConnectorError as exc:
        item.problems = [f"could not read the destination's copy: {exc}"]
        return item
    item.diff = mapping.payload_diff(pushing.comparable(item.payload), pushing.unwrap(change.raw))
    return item
