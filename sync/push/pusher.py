"""One push run of one profile: pages of documents prepared and sent, in dependency order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from connectors.base import (
    PushContext,
    ValidationError,
)
from reconciliation.services import exception_fingerprint, exception_record
from sync import mapping
from sync.models import (
    Binding,
    CreditNote,
    Customer,
    Invoice,
    ObjectType,
    Payment,
    PushOperation,
    SyncJob,
    SyncProfile,
)
from sync.push.batches import execute_batch
from sync.push.common import DONE, GONE, ORDER, Kind, Op, Prepared, PushReport, Severity, State, Unmatched
from sync.push.outbox import _exception, _settle, execute
from sync.push.planning import (
    _operation,
    _operations,
    _pages,
    _unsettled_ops,
    candidates,
    mapping_table,
    mapping_url,
    operation_for,
)
from sync.push.records import (
    credit_note_record,
    customer_number,
    customer_record,
    document_label,
    invoice_record,
    payment_record,
)
from sync.sending import Sender


# --- preparing documents ------------------------------------------------------------------------------
class Pusher:
    """One push run of one profile: the mapping snapshot, the connector and the dependencies so far."""

    def __init__(self, profile: SyncProfile, job: SyncJob | None = None, *, dry_run: bool = False) -> None:
        self.profile = profile
        self.job = job
        self.dry_run = dry_run
        self.connector = profile.destination.connector()
        self.table = mapping_table(profile)
        self.report = PushReport()
        self.customer_ids: dict[int, str] = {}
        self.page_invoice_ids: dict[int, str] = {}  # invoice pk -> id there ("" not bound), this page
        self.sender = Sender(1)  # batches of creates; run() keeps several in flight where it may

    def concurrency(self) -> int:
        """Batches of creates in flight at once: SYNC_PUSH_CONCURRENCY, never more than the destination
        allows at once (Xero 5 calls per tenant, QuickBooks 10 per realm). A dry run sends nothing."""
        if self.dry_run:
            return 1
        caps = [limit.limit for limit in self.connector.rate_limits if limit.concurrent]
        return max(1, min([settings.SYNC_PUSH_CONCURRENCY, *caps]))

    # references: what a lookup after a crash finds the document by
    def reference(self, object_type: str, document: Any) -> str:
        if object_type == ObjectType.CUSTOMER:
            if self.connector.customer_reference_is_name:
                return document.name
            return customer_number(document)
        if object_type == ObjectType.PAYMENT:
            return f"LL{self.profile.pk}-P{document.pk}"
        return mapping.document_number(document.number, self.table)

    # --- dependencies: customers
    def customer_id(self, customer: Customer) -> str:
        """The destination's id for the customer: bound, mapped, matched, or created now."""
        if customer.pk in self.customer_ids:
            return self.customer_ids[customer.pk]
        binding = Binding.objects.filter(
            connection_id=self.profile.destination_id, object_type=ObjectType.CUSTOMER, object_id=customer.pk
        ).first()
        found = binding.external_id if binding else ""
        if not found:
            found, how = mapping.customer_match(
                name=customer.name, email=customer.email, tax_number=customer.tax_number, table=self.table
            )
            if found and not self.dry_run:
                Binding.objects.get_or_create(
                    connection_id=self.profile.destination_id,
                    object_type=ObjectType.CUSTOMER,
                    object_id=customer.pk,
                    defaults={"external_id": found, "external_number": how, "document_version": 1},
                )
        if not found and not self.dry_run:
            found = self._customer_create(customer)
        self.customer_ids[customer.pk] = found
        return found

    def _customer_create(self, customer: Customer) -> str:
        reference = self.reference(ObjectType.CUSTOMER, customer)
        op = _operation(self.profile, ObjectType.CUSTOMER, customer, Op.CREATE, reference, self.job)
        if op.state == State.SUCCEEDED:
            return op.external_id
        record = customer_record(customer)
        context = PushContext(reference=customer_number(customer))
        try:
            payload = self.connector.render(ObjectType.CUSTOMER, record, context)
        except ValidationError as exc:
            _settle(op, State.BLOCKED, str(exc))
            return ""
        execute(self.connector, Prepared(op, customer, record, context, payload), self.report)
        op.refresh_from_db()
        return op.external_id if op.state == State.SUCCEEDED else ""

    def invoice_ids(self, documents: Iterable[Invoice]) -> dict[str, str]:
        """Canonical invoice number -> id in the destination, for the invoices bound there (those the
        page's prefetch read come from it; "" there means read and not bound)."""
        by_pk = {invoice.pk: invoice.number for invoice in documents}
        known = self.page_invoice_ids
        found = {by_pk[pk]: known[pk] for pk in by_pk if known.get(pk)}
        missing = [pk for pk in by_pk if pk not in known]
        if missing:
            bound = Binding.objects.filter(
                connection_id=self.profile.destination_id,
                object_type=ObjectType.INVOICE,
                object_id__in=missing,
                remote_deleted=False,
            ).values_list("object_id", "external_id")
            found.update({by_pk[pk]: external for pk, external in bound})
        return found

    def page_prefetch(self, object_type: str, documents: Sequence[Any]) -> None:
        """Read once for a page what preparing each document would otherwise read one by one: the
        destination ids of the customers and of the invoices the documents point at."""
        if object_type == ObjectType.CUSTOMER:
            return
        customers: set[int] = set()
        invoices: set[int] = set()
        for document in documents:
            if document.customer_id:
                customers.add(document.customer_id)
            if object_type in (ObjectType.PAYMENT, ObjectType.CREDIT_NOTE):
                allocations = list(document.allocations.all())
                invoices.update(a.invoice_id for a in allocations)
                if object_type == ObjectType.PAYMENT and not document.customer_id and allocations:
                    customers.add(allocations[0].invoice.customer_id)
            if object_type == ObjectType.CREDIT_NOTE and document.original_invoice_id:
                invoices.add(document.original_invoice_id)
        customers -= set(self.customer_ids)
        self.page_invoice_ids = dict.fromkeys(invoices, "")
        if not customers and not invoices:
            return
        bound = Binding.objects.filter(connection_id=self.profile.destination_id).filter(
            Q(object_type=ObjectType.CUSTOMER, object_id__in=customers)
            | Q(object_type=ObjectType.INVOICE, object_id__in=invoices, remote_deleted=False)
        )
        for kind, object_id, external_id in bound.values_list("object_type", "object_id", "external_id"):
            if kind == ObjectType.CUSTOMER:
                self.customer_ids[object_id] = external_id
            else:
                self.page_invoice_ids[object_id] = external_id

    # --- per type
    def context_for(
        self, object_type: str, document: Any, problems: list[mapping.MappingProblem]
    ) -> PushContext:
        reference = self.reference(object_type, document)
        if object_type == ObjectType.PAYMENT:
            return self._payment_context(document, reference, problems)
        lines, line_problems = mapping.line_context(document.lines.all(), self.table)
        problems += line_problems
        customer_id = self.customer_id(document.customer)
        if not customer_id and not self.dry_run:
            problems.append(
                mapping.MappingProblem(
                    "customer",
                    document.customer.name,
                    "customer",
                    f"customer {document.customer.name!r} is not in the destination and could not be created",
                )
            )
        invoice_ids = {}
        if object_type == ObjectType.CREDIT_NOTE:
            invoices = [a.invoice for a in document.allocations.all()]
            if document.original_invoice:
                invoices.append(document.original_invoice)
            invoice_ids = self.invoice_ids(invoices)
        return PushContext(
            reference=reference,
            number=reference,
            customer_id=customer_id or (f"(new: {document.customer.name})" if self.dry_run else ""),
            lines=lines,
            invoice_ids=invoice_ids,
        )

    def _payment_context(
        self, payment: Payment, reference: str, problems: list[mapping.MappingProblem]
    ) -> PushContext:
        allocations = list(payment.allocations.all())
        invoice_ids = self.invoice_ids([a.invoice for a in allocations])
        for allocation in allocations:
            if allocation.invoice.number not in invoice_ids:
                problems.append(
                    mapping.MappingProblem(
                        "invoice",
                        allocation.invoice.number,
                        "allocation",
                        f"invoice {allocation.invoice.number} is not in the destination yet; the payment "
                        "follows it",
                    )
                )
        # a destination that needs a deposit account says so when rendering (QuickBooks does not: it
        # defaults to Undeposited Funds), and prepare() turns that into a payment-method mapping problem
        deposit, _ = mapping.deposit_account(payment.method, self.table)
        customer_id = ""
        if payment.customer:
            customer_id = self.customer_id(payment.customer)
        elif allocations:
            customer_id = self.customer_id(allocations[0].invoice.customer)
        return PushContext(
            reference=reference,
            number=reference,
            customer_id=customer_id,
            deposit_account=deposit,
            invoice_ids=invoice_ids,
        )

    def record_for(self, object_type: str, document: Any) -> Any:
        if object_type == ObjectType.INVOICE:
            return invoice_record(document)
        if object_type == ObjectType.CREDIT_NOTE:
            return credit_note_record(document)
        if object_type == ObjectType.PAYMENT:
            return payment_record(document)
        return customer_record(document)

    def prepare(self, object_type: str, document: Any, operation: str, binding: Binding | None) -> Any:
        """(record, context, payload) or raise MappingBlocked naming what is missing."""
        problems: list[mapping.MappingProblem] = []
        record = self.record_for(object_type, document)
        if operation in (Op.VOID, Op.DELETE):
            return record, PushContext(reference=self.reference(object_type, document)), None
        if object_type == ObjectType.PAYMENT and not document.allocations.all():
            raise Unmatched(document)  # before the context: no customer is created for a payment held back
        if object_type == ObjectType.CUSTOMER:
            context = PushContext(reference=customer_number(document))
        else:
            context = self.context_for(object_type, document, problems)
        if problems:
            raise mapping.MappingBlocked(problems)
        try:
            payload = self.connector.render(object_type, record, context)
        except ValidationError as exc:
            if exc.field == "deposit_account":
                method = getattr(document, "method", "") or "(empty)"
                problem = mapping.MappingProblem(
                    "payment_method",
                    method,
                    "payment method",
                    f"no deposit account mapped for payment method {method!r}",
                )
            else:
                problem = mapping.MappingProblem(exc.field or "field", str(exc.value), "document", str(exc))
            raise mapping.MappingBlocked([problem]) from exc
        return record, context, payload

    def blocked(self, op: PushOperation, document: Any, exc: mapping.MappingBlocked) -> None:
        _settle(op, State.BLOCKED, str(exc))
        problems = [problem.as_dict() for problem in exc.problems]
        where = mapping_url(self.profile)
        _exception(
            op,
            Kind.MAPPING_MISSING,
            f"{document_label(op.object_type, document)} is waiting: {exc.problems[0].message}",
            f"{exc}. "
            + (
                "Correct the rate at the source; the document goes through on the next run."
                if all(problem.kind == "tax_rate" for problem in exc.problems)
                else f"Add the mapping at {where}; the document goes through on the next run."
            ),
            document=document,
            severity=Severity.MEDIUM,
            details={"problems": problems, "mapping_url": where},
        )
        self.report.count("blocked")

    def unmatched(self, op: PushOperation, payment: Payment) -> None:
        _settle(op, State.BLOCKED, "the payment matches no invoice")
        exception_record(
            kind=Kind.UNMATCHED_PAYMENT,
            fingerprint=exception_fingerprint(Kind.UNMATCHED_PAYMENT, op.profile_id, "payment", payment.pk),
            title=f"Payment {payment.reference} matches no invoice; not pushed as an unapplied credit",
            message="Apply it to an invoice at the source, or propose an override.",
            severity=Severity.HIGH,
            connection=self.profile.source,
            job=self.job,
            object_type=ObjectType.PAYMENT,
            object_id=payment.pk,
            document_number=payment.reference,
            currency=payment.currency,
            amount_at_risk=payment.amount,
        )
        self.report.count("blocked")

    # --- the run
    def run(
        self,
        *,
        date_range: tuple[date, date] | None = None,
        progress: Callable[[int], None] | None = None,
        documents: dict[str, list[int]] | None = None,
    ) -> PushReport:
        """Push what is due; with `documents` (object type -> ids), only those documents."""
        if self.profile.posting_mode == SyncProfile.PostingMode.DAILY_SUMMARY:
            from sync.summary import summaries_push  # built on this module: imported when used

            return summaries_push(self, date_range=date_range, progress=progress)
        wanted = set(self.profile.object_types or [])
        if documents is not None:
            wanted &= set(documents)
        # while batches keep it waiting, the job's lease is renewed (and a cancel noticed) all the same
        heartbeat = (lambda: progress(0)) if progress is not None else None
        try:
            with Sender(self.concurrency(), heartbeat=heartbeat) as self.sender:
                for object_type in ORDER:
                    if object_type not in wanted:
                        continue
                    ids = documents[object_type] if documents is not None else None
                    for page in _pages(candidates(self.profile, object_type, date_range=date_range, ids=ids)):
                        self.push_page(object_type, page)
                        if progress is not None:
                            progress(len(page))
                    # every batch of this type answered before what depends on it (and its pending updates)
                    self.sender.drain()
                    self._pending_updates_push(object_type)
                    if object_type == ObjectType.CREDIT_NOTE:
                        self.allocations_push()
        finally:
            self.sender = Sender(1)
        return self.report

    def push_page(self, object_type: str, documents: Sequence[Any]) -> None:
        self.sender.check()  # a batch in flight failed (the destination asked us to wait): stop here
        bindings = {
            b.object_id: b
            for b in Binding.objects.filter(
                connection_id=self.profile.destination_id,
                object_type=object_type,
                object_id__in=[d.pk for d in documents],
            )
        }
        planned: list[tuple[Any, str, Binding | None, str]] = []
        for document in documents:
            self.report.seen += 1
            binding = bindings.get(document.pk)
            operation = operation_for(object_type, document, binding)
            if operation is None:
                self.report.count("skipped")
                continue
            if operation == Op.UPDATE and not self.connector.supports(object_type, "update"):
                self._mark_pushed(object_type, document, binding)
                self.report.count("skipped")
                continue
            planned.append((document, operation, binding, self.reference(object_type, document)))
        ops = _operations(
            self.profile, object_type, [(doc, operation, ref) for doc, operation, _, ref in planned], self.job
        )
        self.page_prefetch(object_type, [document for document, *_ in planned])
        batch: list[Prepared] = []
        singles: list[Prepared] = []
        for (document, operation, binding, _), op in zip(planned, ops, strict=True):
            if op.state in (State.SUCCEEDED, State.FAILED, State.SUPERSEDED):
                self.report.count("skipped" if op.state != State.FAILED else "failed")
                continue
            try:
                record, context, payload = self.prepare(object_type, document, operation, binding)
            except mapping.MappingBlocked as exc:
                self.blocked(op, document, exc)
                continue
            except Unmatched:
                self.unmatched(op, document)
                continue
            item = Prepared(op, document, record, context, payload, binding)
            if operation == Op.CREATE and self._batchable(object_type):
                batch.append(item)
            else:
                singles.append(item)
        # one query for the page: which creates follow a send whose outcome is unknown (look first)
        unsettled = _unsettled_ops([item.op for item in singles if item.op.operation == Op.CREATE])
        for item in singles:
            execute(self.connector, item, self.report, unsettled=item.op.pk in unsettled)
        if batch:
            limit = self.connector.batch_limit
            for start in range(0, len(batch), limit):
                self.sender.submit(execute_batch, self.connector, batch[start : start + limit], self.report)

    def _pending_updates_push(self, object_type: str) -> None:
        """Documents whose create was found in the destination at an older version: their update now."""
        while ids := [pk for kind, pk in self.report.pending_updates if kind == object_type]:
            self.report.pending_updates = [p for p in self.report.pending_updates if p[0] != object_type]
            documents = list(candidates(self.profile, object_type, ids=ids))
            self.report.seen -= len(documents)  # seen once already in this run
            if not documents:
                return
            self.push_page(object_type, documents)
            self.sender.drain()

    def _batchable(self, object_type: str) -> bool:
        return (
            object_type in (ObjectType.INVOICE, ObjectType.CREDIT_NOTE)
            and hasattr(self.connector, "create_many")
            and getattr(self.connector, "batch_limit", 1) > 1
        )

    def _mark_pushed(self, object_type: str, document: Any, binding: Binding | None) -> None:
        if binding is not None:
            binding.document_version = getattr(document, "row_version", 1)
            binding.save(update_fields=["document_version", "last_synced_at"])

    def allocations_push(self) -> None:
        """Credit notes already in the destination, applied to their invoices there (after both exist).
        A page of notes at a time: one read for their operations and one for their invoices' ids."""
        if not hasattr(self.connector, "allocate_credit_note"):
            return
        pushed = Binding.objects.filter(
            connection_id=self.profile.destination_id, object_type=ObjectType.CREDIT_NOTE
        ).values("object_id")
        notes = (
            CreditNote.objects.filter(source_connection_id=self.profile.source_id, pk__in=pushed)
            .filter(allocations__isnull=False)
            .exclude(status__in=GONE)
            .distinct()
            .prefetch_related("allocations__invoice", "lines")
            .select_related("customer", "original_invoice")
        )
        for page in _pages(notes):
            self._allocations_page(page)

    def _allocations_page(self, notes: Sequence[CreditNote]) -> None:
        wanted = [(note, Op.ALLOCATE, self.reference(ObjectType.CREDIT_NOTE, note)) for note in notes]
        ops = _operations(self.profile, ObjectType.CREDIT_NOTE, wanted, self.job)
        due = [(note, op) for note, op in zip(notes, ops, strict=True) if op.state not in DONE]
        if not due:
            return
        bindings = {
            b.object_id: b
            for b in Binding.objects.filter(
                connection_id=self.profile.destination_id,
                object_type=ObjectType.CREDIT_NOTE,
                object_id__in=[note.pk for note, _ in due],
            )
        }
        self.page_prefetch(ObjectType.CREDIT_NOTE, [note for note, _ in due])
        for note, op in due:
            allocations = list(note.allocations.all())
            invoice_ids = self.invoice_ids([a.invoice for a in allocations])
            missing = [a.invoice.number for a in allocations if a.invoice.number not in invoice_ids]
            if missing:
                problems = [
                    mapping.MappingProblem(
                        "invoice", number, "allocation", f"invoice {number} is not in the destination yet"
                    )
                    for number in missing
                ]
                self.blocked(op, note, mapping.MappingBlocked(problems))
                continue
            context = PushContext(reference=op.reference, invoice_ids=invoice_ids)
            item = Prepared(op, note, credit_note_record(note), context, None, bindings.get(note.pk))
            execute(self.connector, item, self.report)


def push_run(
    profile: SyncProfile,
    job: SyncJob | None = None,
    *,
    date_range: tuple[date, date] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PushReport:
    return Pusher(profile, job).run(date_range=date_range, progress=progress)


def operations_reset(operations: Iterable[PushOperation]) -> int:
    """Failed operations made ready to send again ("retry failed items"); a lookup still comes first."""
    ids = [op.pk for op in operations if op.state in (State.FAILED, State.BLOCKED, State.UNCERTAIN)]
    return PushOperation.objects.filter(pk__in=ids).update(
        state=State.RETRY_SCHEDULED, next_attempt_at=None, updated_at=timezone.now()
    )
