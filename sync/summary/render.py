"""Rendering a daily summary: its lines summed per destination placement, its payment's allocations, the
payload; members the mapping cannot place hold it back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from connectors.base import (
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    PushContext,
    ValidationError,
)
from connectors.money import currency_exponent
from sync import mapping
from sync import push as pushing
from sync.models import Binding, CreditNote, Invoice, ObjectType, SummaryMember, SummaryPosting
from sync.summary.base import SUMMARY_CUSTOMER, TYPE_OF, Kind


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
