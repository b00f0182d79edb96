"""Two-way profiles: payments recorded in the destination go back to the source.

The classic failure this closes: a customer pays by bank transfer, the accountant records it in the
books (QuickBooks, Xero), and the shop or Stripe still shows the invoice unpaid and keeps asking the
customer for the money. For a profile whose direction is "two_way", after its push:

1. **Pull back.** The destination's payments are read page by page with a cursor of the profile's own
   (`SyncCursor` keyed `twoway:<profile id>`, so neither the destination mirror's cursor nor a pull of
   that connection as a source moves). A payment there becomes a canonical payment whose origin is the
   destination (its binding there `is_origin`, its raw payload kept: the lineage) when it is applied to
   invoices this profile pushed there, and only to the part applied to them. Never echoed: a payment
   bound there as a copy (one we pushed), or carrying the reference of one of our own pushes still
   waiting for its binding (a crash between the write and the commit), is ours and is skipped.
2. **Push back.** Each such payment goes to the source through the outbox exactly like any push
   (`sync/push/`): a `PushOperation` for the source connection with a deterministic key, committed
   `in_flight` before the request, the binding committed straight after, and a lookup first when an
   earlier send's outcome is unknown. The source connector's `record_payment` writes it: Stripe marks
   the invoice paid out of band (and, holding no payment of its own for that, needs no lookup: an
   invoice found paid already is not paid twice); QuickBooks and Xero sources get a payment applied to
   the invoice, for the amount paid (a partial payment stays partial), found again by its reference.
   A payment pulled from the destination is never a candidate of the forward push (its source is the
   destination), and a payment from the source is never pulled back (it is bound there as our copy).

A source that cannot record payments, or refuses one (Stripe marks only whole invoices paid), gets a
`sync_failure` exception saying what stays unpaid where, never silence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from connectors.base import (
    AllocationRecord,
    Change,
    CustomerRecord,
    PaymentRecord,
    PermanentError,
    PushContext,
    record_to_dict,
)
from reconciliation.models import ReconciliationException
from sync import push as pushing
from sync import snapshots
from sync.imports import page_write, problem_record
from sync.models import Binding, Invoice, ObjectType, Payment, PushOperation, SyncCursor, SyncJob, SyncProfile
from sync.pull import cursor_advance, cursor_begin

Kind = ReconciliationException.Kind
Op = PushOperation.Operation
State = PushOperation.State
CURSOR_PREFIX = "twoway:"
# Sources that keep no payment record of their own for a payment recorded against an invoice (Stripe
# only flags the invoice paid out of band): nothing to look up; their record_payment is safe to repeat.
NO_PAYMENT_LOOKUP = {"stripe"}


def cursor_key(profile: SyncProfile) -> str:
    return f"{CURSOR_PREFIX}{profile.pk}"


def back_key(profile: SyncProfile, payment: Payment) -> str:
    """The outbox key of a payment's way back: never the key of a push to the destination."""
    return pushing.operation_key(
        profile.pk, ObjectType.PAYMENT, payment.pk, payment.row_version, f"{Op.CREATE}:source"
    )


def payment_reference(profile: SyncProfile, payment: Payment) -> str:
    return f"LL{profile.pk}-P{payment.pk}"


# --- pull back ----------------------------------------------------------------------------------------
def payments_pull_back(
    profile: SyncProfile,
    job: SyncJob | None,
    report: pushing.PushReport,
    heartbeat: Callable[[int], None] | None = None,
) -> None:
    """The destination's payments applied to this profile's invoices there, as canonical payments."""
    connection = profile.destination
    connector = connection.connector()
    if not connector.supports(ObjectType.PAYMENT, "list_changes"):
        report.messages.append(f"{connection} cannot list payments: nothing comes back from it")
        return
    cursor, _ = SyncCursor.objects.get_or_create(connection=connection, object_type=cursor_key(profile))
    cursor_begin(cursor, floor=profile.cutover_date)
    while True:
        page = connector.list_changes(
            ObjectType.PAYMENT, since=cursor.run_since, page=cursor.run_page or None
        )
        records = _ours(profile, job, page.changes, report)  # read first: no request under a lock
        with transaction.atomic():
            if records:
                written, failed = page_write(connection, job, records)
                report.created += len(written.created)
                report.updated += len(written.updated)
                report.skipped += len(written.unchanged)
                report.failed += len(failed)
            cursor_advance(cursor, page)
        if heartbeat is not None:
            heartbeat(len(page.changes))
        if not page.next_page:
            return


def _ours(
    profile: SyncProfile, job: SyncJob | None, changes: Sequence[Change], report: pushing.PushReport
) -> list[PaymentRecord]:
    """The page's payments to bring back, as canonical records applied to our canonical invoices."""
    connection = profile.destination
    live = []
    for change in changes:
        report.seen += 1
        if change.problem is not None:
            problem_record(connection, job, ObjectType.PAYMENT, change.problem, "")
            report.failed += 1
        elif change.record is None or change.deleted or change.record.status != Payment.Status.COMPLETED:
            report.skipped += 1
        else:
            live.append(change.record)
    if not live:
        return []
    ids = [record.external_id for record in live]
    bound = dict(
        Binding.objects.filter(
            connection=connection, object_type=ObjectType.PAYMENT, external_id__in=ids
        ).values_list("external_id", "is_origin")
    )
    copies = {external_id for external_id, origin in bound.items() if not origin} | _split_parts(
        connection, ids
    )
    sent = set(
        PushOperation.objects.filter(
            connection=connection,
            object_type=ObjectType.PAYMENT,
            reference__in={record.reference for record in live if record.reference},
        ).values_list("reference", flat=True)
    )
    invoices = _our_invoices(profile, live)
    records = []
    for record in live:
        if record.external_id in copies or record.reference in sent:
            report.skipped += 1  # ours: pushed there by a profile, never brought back
            continue
        mine = [a for a in record.allocations if a.invoice_external_id in invoices]
        if not mine:
            report.skipped += 1  # applied to nothing this profile pushed there
            continue
        customer = invoices[mine[0].invoice_external_id].customer
        records.append(
            dataclasses.replace(
                record,
                # the canonical customer of the invoice, not a look-alike made from the copy there
                customer=CustomerRecord(name=customer.name, email=customer.email, currency=customer.currency),
                allocations=tuple(
                    dataclasses.replace(a, invoice_number=invoices[a.invoice_external_id].number)
                    for a in mine
                ),
            )
        )
    return records


def _split_parts(connection: Any, ids: Iterable[str]) -> set[str]:
    """Ids among `ids` that are one part of a payment bound as several records there ("id1,id2")."""
    match = Q()
    wanted = [external_id for external_id in ids if external_id and "," not in external_id]
    for external_id in wanted:
        match |= (
            Q(external_id__startswith=f"{external_id},")
            | Q(external_id__endswith=f",{external_id}")
            | Q(external_id__contains=f",{external_id},")
        )
    if not wanted:
        return set()
    groups = Binding.objects.filter(connection=connection, object_type=ObjectType.PAYMENT).filter(match)
    return {part for binding in groups for part in binding.external_id.split(",")} & set(wanted)


def _our_invoices(profile: SyncProfile, records: Sequence[PaymentRecord]) -> dict[str, Invoice]:
    """Invoice id in the destination -> canonical invoice, for the invoices this profile pushed there."""
    wanted = {a.invoice_external_id for r in records for a in r.allocations if a.invoice_external_id}
    if not wanted:
        return {}
    bound = dict(
        Binding.objects.filter(
            connection=profile.destination,
            object_type=ObjectType.INVOICE,
            external_id__in=wanted,
            is_origin=False,
        ).values_list("object_id", "external_id")
    )
    invoices = Invoice.objects.filter(pk__in=bound, source_connection=profile.source).select_related(
        "customer"
    )
    return {bound[invoice.pk]: invoice for invoice in invoices}


# --- push back ----------------------------------------------------------------------------------------
def candidates(profile: SyncProfile) -> Any:
    """Completed payments pulled back from the destination, applied to invoices from the profile's source,
    not yet bound at the source."""
    at_source = Binding.objects.filter(
        connection_id=profile.source_id, object_type=ObjectType.PAYMENT, object_id=OuterRef("pk")
    )
    return (
        Payment.objects.filter(
            source_connection_id=profile.destination_id,
            status=Payment.Status.COMPLETED,
            allocations__invoice__source_connection_id=profile.source_id,
        )
        .exclude(Exists(at_source))
        .distinct()
        .prefetch_related("allocations__invoice__customer")
        .order_by("pk")
    )


def payments_push_back(profile: SyncProfile, job: SyncJob | None, report: pushing.PushReport) -> None:
    source = profile.source
    connector = source.connector()
    for page in pushing._pages(candidates(profile)):
        origins = _origins(profile, page)
        for payment in page:
            report.seen += 1
            op = _back_operation(profile, payment, job)
            if op.state in pushing.DONE or op.state == State.SUPERSEDED:
                report.count("skipped")
                continue
            item = _prepared(profile, connector, op, payment, origins)
            if not connector.supports(ObjectType.PAYMENT, "record_payment"):
                _refused(item, PermanentError(f"{source} cannot record payments"), report)
                continue
            unsettled = pushing._unsettled(op) and source.platform not in NO_PAYMENT_LOOKUP
            before = report.failed
            pushing.execute(connector, item, report, unsettled=unsettled)
            if report.failed > before and item.op.state == State.FAILED:
                _explain(item)


def back_preview(profile: SyncProfile, *, limit: int) -> list[tuple[Payment, Any, list[str]]]:
    """Dry run of the push back: up to `limit` payments already pulled back from the destination that
    would be recorded at the source now, each with what `record_payment` would be given and what would
    stop it. Writes nothing and sends nothing (payments still only in the destination show after the
    next run's pull back)."""
    if profile.direction != SyncProfile.Direction.TWO_WAY or limit <= 0:
        return []
    connector = profile.source.connector()
    page = list(candidates(profile)[: limit * 2])
    done = set(
        PushOperation.objects.filter(
            idempotency_key__in=[back_key(profile, payment) for payment in page],
            state__in=[*pushing.DONE, State.SUPERSEDED],
        ).values_list("object_id", flat=True)
    )
    page = [payment for payment in page if payment.pk not in done][:limit]
    origins = _origins(profile, page)
    previews = []
    for payment in page:
        op = PushOperation(profile=profile, reference=payment_reference(profile, payment))  # never saved
        item = _prepared(profile, connector, op, payment, origins)
        problems = []
        if not connector.supports(ObjectType.PAYMENT, "record_payment"):
            problems.append(f"{profile.source} cannot record payments: it would be a sync failure")
        missing = [a.invoice_number for a in item.record.allocations if not a.invoice_external_id]
        if missing:
            problems.append(f"not at {profile.source}: invoice {', '.join(missing)}")
        previews.append((payment, item.payload, problems))
    return previews


def _back_operation(profile: SyncProfile, payment: Payment, job: SyncJob | None) -> PushOperation:
    op, created = PushOperation.objects.get_or_create(
        idempotency_key=back_key(profile, payment),
        defaults={
            "profile": profile,
            "connection_id": profile.source_id,
            "object_type": ObjectType.PAYMENT,
            "object_id": payment.pk,
            "document_version": payment.row_version,
            "operation": Op.CREATE,
            "reference": payment_reference(profile, payment),
            "job": job,
        },
    )
    if not created and job is not None and op.job_id != job.pk and op.state != State.SUCCEEDED:
        op.job = job
        op.save(update_fields=["job", "updated_at"])
    return op


def _origins(profile: SyncProfile, payments: Sequence[Payment]) -> dict[tuple[str, int], str]:
    """(object type, canonical id) -> id at the source, for the page's invoices and their customers."""
    invoices = {a.invoice for p in payments for a in p.allocations.all()}
    rows = Binding.objects.filter(connection_id=profile.source_id, is_origin=True).filter(
        Q(object_type=ObjectType.INVOICE, object_id__in=[i.pk for i in invoices])
        | Q(object_type=ObjectType.CUSTOMER, object_id__in=[i.customer_id for i in invoices])
    )
    return {
        (kind, pk): external
        for kind, pk, external in rows.values_list("object_type", "object_id", "external_id")
    }


def _source_customer(connector: Any, invoice: Invoice, origins: dict[tuple[str, int], str]) -> str:
    """The invoice's customer at the source: bound there, else named in the invoice as it came."""
    bound = origins.get((ObjectType.CUSTOMER, invoice.customer_id))
    if bound:
        return bound
    record = snapshots.answer_record(connector, ObjectType.INVOICE, invoice.raw_payload)
    customer = getattr(record, "customer", None)
    return getattr(customer, "external_id", "") or ""


def _prepared(
    profile: SyncProfile,
    connector: Any,
    op: PushOperation,
    payment: Payment,
    origins: dict[tuple[str, int], str],
) -> pushing.Prepared:
    """What `record_payment` takes at the source: the payment's part applied to the source's invoices."""
    allocations = [
        a for a in payment.allocations.all() if a.invoice.source_connection_id == profile.source_id
    ]
    invoice_ids = {
        a.invoice.number: origins[(ObjectType.INVOICE, a.invoice_id)]
        for a in allocations
        if (ObjectType.INVOICE, a.invoice_id) in origins
    }
    record = PaymentRecord(
        external_id=str(payment.pk),
        reference=op.reference,
        customer=None,
        transaction_date=payment.transaction_date,
        currency=payment.currency,
        amount=sum((a.amount for a in allocations), payment.amount * 0),
        allocations=tuple(
            AllocationRecord(
                invoice_number=a.invoice.number,
                amount=a.amount,
                allocated_on=a.allocated_on,
                invoice_external_id=invoice_ids.get(a.invoice.number, ""),
            )
            for a in allocations
        ),
        method=payment.method,
        memo=f"Recorded in {profile.destination} ({payment.reference})"[:500] if payment.reference else "",
    )
    context = PushContext(
        reference=op.reference,
        number=op.reference,
        customer_id=_source_customer(connector, allocations[0].invoice, origins) if allocations else "",
        deposit_account=str((profile.source.options or {}).get("payment_deposit_account") or ""),
        invoice_ids=invoice_ids,
    )
    payload = {"payment": record_to_dict(record), "invoice_ids": invoice_ids}
    return pushing.Prepared(op, payment, record, context, payload)


def _refused(item: pushing.Prepared, exc: PermanentError, report: pushing.PushReport) -> None:
    pushing._settle(item.op, State.FAILED, str(exc))
    _explain(item, str(exc))
    report.count("failed")


def _explain(item: pushing.Prepared, error: str = "") -> None:
    """The sync_failure of a payment that did not reach the source, in the words finance needs: what is
    still shown unpaid where, and what to do about it."""
    op, payment = item.op, item.document
    invoices = ", ".join(a.invoice_number for a in item.record.allocations) or "its invoices"
    pushing._exception(
        op,
        Kind.SYNC_FAILURE,
        f"Payment {payment.reference or payment.pk} recorded in {item.op.profile.destination} did not reach "
        f"{op.connection}: {invoices} still unpaid there",
        f"{error or op.error}. {op.connection} may keep asking the customer for money already received: "
        "record the payment there by hand, or correct it in the books and use 'Retry failed items'.",
        document=payment,
        details={"direction": "to the source", "invoices": invoices},
    )


def twoway_run(
    profile: SyncProfile, job: SyncJob | None = None, heartbeat: Callable[[int], None] | None = None
) -> pushing.PushReport:
    """Both halves, for a two-way profile (nothing for a one-way one)."""
    report = pushing.PushReport()
    if profile.direction != SyncProfile.Direction.TWO_WAY:
        return report
    payments_pull_back(profile, job, report, heartbeat)
    payments_push_back(profile, job, report)
    return report
