"""Push: canonical documents to a profile's destination through the outbox, exactly once.

Every write is a `PushOperation` whose idempotency key is derived from (profile, document, document
version, operation). The protocol for each one:

1. If any operation for the document was ever sent and never settled (`in_flight`, `uncertain`,
   `retry_scheduled`), look the document up by its deterministic reference first, and bind what is found.
2. Commit the operation `in_flight` (attempts counted) before the request leaves.
3. Send it with the key as the platform's idempotency header (`requestid`, `Idempotency-Key`).
4. Straight after success, commit the binding (destination id, version) and `succeeded` in one
   transaction. A lost answer (timeout or 5xx after the request left) is `uncertain`: never resent blind.

Updates carry the remote version (SyncToken, UpdatedDateUTC): a destination changed since we wrote it
raises a conflict exception instead of being overwritten. Dependencies go first: the customer before
the invoice, invoices before credit notes and payments, credit allocations after both.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from connectors.base import (
    AllocationRecord,
    ConflictError,
    ConnectorError,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    NotFoundError,
    PaymentRecord,
    PermanentError,
    PushContext,
    RemoteRef,
    RetryableError,
    UncertainError,
    ValidationError,
)
from reconciliation.models import ReconciliationException
from reconciliation.services import exception_fingerprint, exception_record, exceptions_resolve_by_system
from sync import mapping, snapshots
from sync.models import (
    Binding,
    CreditNote,
    Customer,
    Invoice,
    MappingRow,
    ObjectType,
    Payment,
    PushOperation,
    ReferenceData,
    SyncJob,
    SyncProfile,
)
from sync.sending import Sender

Kind = ReconciliationException.Kind
Severity = ReconciliationException.Severity
Op = PushOperation.Operation
State = PushOperation.State
# documents per page: a multiple of every connector's batch_limit (QuickBooks 30, Xero 50), so a page
# goes out in full batches only
PAGE_SIZE = 150
ORDER = (ObjectType.CUSTOMER, ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT)
MODELS: dict[str, Any] = {
    ObjectType.INVOICE: Invoice,
    ObjectType.CREDIT_NOTE: CreditNote,
    ObjectType.PAYMENT: Payment,
    ObjectType.CUSTOMER: Customer,
}
DATE_FIELDS = {
    ObjectType.INVOICE: "issue_date",
    ObjectType.CREDIT_NOTE: "issue_date",
    ObjectType.PAYMENT: "transaction_date",
}
GONE = {"void", "deleted", "failed"}
UNSETTLED = (State.IN_FLIGHT, State.UNCERTAIN, State.RETRY_SCHEDULED)
DONE = (State.SUCCEEDED, State.FAILED)
RETRY_DELAY = timedelta(minutes=1)
# keys a destination adds or rotates on its own: not a difference when verifying an update
VOLATILE_KEYS = {"SyncToken", "sparse", "Id", "MetaData", "UpdatedDateUTC"}
# lines a destination adds to a document of its own accord: never a difference from what was sent
PLATFORM_LINES = {"SubTotalLineDetail"}
MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")

# A test replaces this to kill the worker at a named point (before_request, after_write, after_commit).
CRASH_HOOK: Callable[[str, PushOperation], None] | None = None


def crash_point(name: str, operation: PushOperation) -> None:
    if CRASH_HOOK is not None:
        CRASH_HOOK(name, operation)


class PushPaused(Exception):
    """The destination asked us to wait (rate limit, outage): the run stops, the rest waits its turn."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class PushReport:
    seen: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    blocked: int = 0
    messages: list[str] = field(default_factory=list)
    # documents bound at an older version than they are now (a create found after a crash): updated next
    pending_updates: list[tuple[str, int]] = field(default_factory=list)
    # batches in flight side by side (sync.sending) count into the same report
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, outcome: str) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)


def operation_key(profile_id: int, object_type: str, object_id: int, version: int, operation: str) -> str:
    """The deterministic idempotency key: the same work always gets the same key (40 hex characters fit
    every platform's header, QuickBooks' 50-character requestid included)."""
    text = f"ledgerlink:{profile_id}:{object_type}:{object_id}:{version}:{operation}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


# --- canonical documents -> canonical records ---------------------------------------------------------
def customer_record(customer: Customer) -> CustomerRecord:
    return CustomerRecord(
        name=customer.name,
        email=customer.email,
        tax_number=customer.tax_number,
        external_id=str(customer.pk),
        currency=customer.currency,
    )


def _lines(lines: Iterable[Any]) -> tuple[LineRecord, ...]:
    return tuple(
        LineRecord(
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            subtotal=line.subtotal,
            tax_amount=line.tax_amount,
            total=line.total,
            tax_rate=line.tax_rate,
            item_code=line.item_code,
            line_number=line.line_number,
        )
        for line in lines
    )


def _allocations(allocations: Iterable[Any]) -> tuple[AllocationRecord, ...]:
    return tuple(
        AllocationRecord(invoice_number=a.invoice.number, amount=a.amount, allocated_on=a.allocated_on)
        for a in allocations
    )


def invoice_record(invoice: Invoice) -> InvoiceRecord:
    return InvoiceRecord(
        external_id=str(invoice.pk),
        number=invoice.number,
        customer=customer_record(invoice.customer),
        issue_date=invoice.issue_date,
        currency=invoice.currency,
        status=invoice.status,
        lines=_lines(invoice.lines.all()),
        subtotal=invoice.subtotal,
        tax_total=invoice.tax_total,
        total=invoice.total,
        amount_paid=invoice.amount_paid,
        amount_due=invoice.amount_due,
        due_date=invoice.due_date,
        memo=invoice.memo,
    )


def credit_note_record(note: CreditNote) -> CreditNoteRecord:
    return CreditNoteRecord(
        external_id=str(note.pk),
        number=note.number,
        customer=customer_record(note.customer),
        issue_date=note.issue_date,
        currency=note.currency,
        status=note.status,
        lines=_lines(note.lines.all()),
        subtotal=note.subtotal,
        tax_total=note.tax_total,
        total=note.total,
        remaining_credit=note.remaining_credit,
        original_invoice_number=note.original_invoice.number if note.original_invoice else "",
        allocations=_allocations(note.allocations.all()),
        memo=note.memo,
    )


def payment_record(payment: Payment) -> PaymentRecord:
    return PaymentRecord(
        external_id=str(payment.pk),
        reference=payment.reference,
        customer=customer_record(payment.customer) if payment.customer else None,
        transaction_date=payment.transaction_date,
        currency=payment.currency,
        amount=payment.amount,
        allocations=_allocations(payment.allocations.all()),
        method=payment.method,
        status=payment.status,
        processor_transaction_id=payment.processor_transaction_id,
        fee=payment.fee,
        payout_id=payment.payout_id,
        memo=payment.memo,
    )


def customer_number(customer: Customer) -> str:
    """The customer's deterministic reference in a destination (Xero ContactNumber)."""
    return f"LL-C{customer.pk}"


def document_label(object_type: str, document: Any) -> str:
    name = object_type.replace("_", " ").capitalize()
    return f"{name} {getattr(document, 'number', '') or getattr(document, 'reference', '') or document}"


# --- the mapping snapshot -----------------------------------------------------------------------------
def mapping_table(profile: SyncProfile) -> mapping.MappingTable:
    connector = profile.destination.connector()
    rows: dict[str, dict[str, str]] = {}
    prefix = suffix = ""
    if profile.mapping_set_id:
        prefix, suffix = profile.mapping_set.number_prefix, profile.mapping_set.number_suffix
        for row in MappingRow.objects.filter(mapping_set_id=profile.mapping_set_id):
            source = row.source_value.lower() if row.kind == MappingRow.Kind.CUSTOMER else row.source_value
            rows.setdefault(row.kind, {})[source] = row.target_value
    known: dict[str, set[str]] = {}
    customers = []
    for ref in ReferenceData.objects.filter(connection=profile.destination, active=True):
        if ref.kind == ReferenceData.Kind.CUSTOMER:
            customers.append(mapping.DestinationCustomer(ref.code, ref.name, ref.email, ref.tax_number))
        else:
            known.setdefault(ref.kind, set()).add(ref.code)
    return mapping.MappingTable(
        rows=rows,
        number_prefix=prefix,
        number_suffix=suffix,
        line_rules=dict(connector.line_mapping),
        known={kind: frozenset(codes) for kind, codes in known.items()},
        customers=tuple(customers),
    )


def mapping_url(profile: SyncProfile) -> str:
    if profile.mapping_set_id:
        return reverse("admin:sync_mappingset_change", args=[profile.mapping_set_id])
    return reverse("admin:sync_syncprofile_change", args=[profile.pk])


# --- planning -----------------------------------------------------------------------------------------
def candidates(
    profile: SyncProfile,
    object_type: str,
    *,
    date_range: tuple[date, date] | None = None,
    ids: Sequence[int] | None = None,
) -> Any:
    """Documents from the profile's source that the destination does not have at their current version
    (only those with the primary keys `ids`, when given)."""
    model = MODELS[object_type]
    bound = Binding.objects.filter(
        connection_id=profile.destination_id, object_type=object_type, object_id=OuterRef("pk")
    )
    if object_type == ObjectType.CUSTOMER:
        origin = Binding.objects.filter(connection_id=profile.source_id, object_type=object_type)
        return (
            model.objects.filter(pk__in=origin.values("object_id"))
            .annotate(bound_id=Subquery(bound.values("pk")[:1]))
            .filter(bound_id__isnull=True)
            .order_by("pk")
        )
    queryset = model.objects.filter(source_connection_id=profile.source_id)
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    date_field = DATE_FIELDS[object_type]
    if date_range is not None:
        queryset = queryset.filter(**{f"{date_field}__range": date_range})
    elif profile.cutover_date:
        queryset = queryset.filter(**{f"{date_field}__gte": profile.cutover_date})
    queryset = queryset.annotate(
        bound_id=Subquery(bound.values("pk")[:1]),
        pushed=Subquery(bound.values("document_version")[:1]),
    ).filter(Q(bound_id__isnull=True) | Q(pushed__isnull=True) | Q(pushed__lt=F("row_version")))
    related = {
        ObjectType.INVOICE: (["customer"], ["lines"]),
        ObjectType.CREDIT_NOTE: (["customer", "original_invoice"], ["lines", "allocations__invoice"]),
        ObjectType.PAYMENT: (["customer"], ["allocations__invoice"]),
    }[object_type]
    return queryset.select_related(*related[0]).prefetch_related(*related[1]).order_by("pk")


def _pages(queryset: Any, size: int = PAGE_SIZE) -> Iterable[list[Any]]:
    """Keyset pages: documents that stay behind (blocked, failed) never make the loop go round again."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last)[:size])
        if not page:
            return
        yield page
        last = page[-1].pk


def operation_for(object_type: str, document: Any, binding: Binding | None) -> str | None:
    status = getattr(document, "status", "")
    if binding is None:
        if object_type == ObjectType.PAYMENT and status != Payment.Status.COMPLETED:
            return None
        return None if status in GONE else Op.CREATE
    if binding.remote_deleted:
        return None
    if status in GONE:
        return Op.VOID
    return Op.UPDATE


def _operation(
    profile: SyncProfile, object_type: str, document: Any, operation: str, reference: str, job: SyncJob | None
) -> PushOperation:
    version = getattr(document, "row_version", 1)
    key = operation_key(profile.pk, object_type, document.pk, version, operation)
    op, created = PushOperation.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "profile": profile,
            "connection_id": profile.destination_id,
            "object_type": object_type,
            "object_id": document.pk,
            "document_version": version,
            "operation": operation,
            "reference": reference[:100],
            "job": job,
        },
    )
    if created:
        # older versions never sent are replaced by this one; sent ones stay until settled by lookup
        PushOperation.objects.filter(
            profile=profile, object_type=object_type, object_id=document.pk, attempts=0
        ).exclude(pk=op.pk).filter(state__in=[State.PENDING, State.BLOCKED]).update(state=State.SUPERSEDED)
    elif job is not None and op.job_id != job.pk and op.state != State.SUCCEEDED:
        op.job = job
        op.save(update_fields=["job", "updated_at"])
    return op


def _operations(
    profile: SyncProfile,
    object_type: str,
    wanted: Sequence[tuple[Any, str, str]],
    job: SyncJob | None,
) -> list[PushOperation]:
    """`_operation` for a page of (document, operation, reference) at once: one query for the
    operations that exist, one insert for the new ones, one update each for superseding and for
    moving them to this job. A clash with a concurrent writer falls back to one at a time."""
    if not wanted:
        return []
    keyed = []
    for document, operation, reference in wanted:
        version = getattr(document, "row_version", 1)
        key = operation_key(profile.pk, object_type, document.pk, version, operation)
        keyed.append((key, document, operation, reference, version))
    found = {
        op.idempotency_key: op
        for op in PushOperation.objects.filter(idempotency_key__in=[key for key, *_ in keyed])
    }
    new = [
        PushOperation(
            idempotency_key=key,
            profile=profile,
            connection_id=profile.destination_id,
            object_type=object_type,
            object_id=document.pk,
            document_version=version,
            operation=operation,
            reference=reference[:100],
            job=job,
        )
        for key, document, operation, reference, version in keyed
        if key not in found
    ]
    if new:
        try:
            with transaction.atomic():
                created = PushOperation.objects.bulk_create(new)
                # older versions never sent are replaced by these; sent ones stay until settled by lookup
                PushOperation.objects.filter(
                    profile=profile,
                    object_type=object_type,
                    object_id__in=[op.object_id for op in created],
                    attempts=0,
                    state__in=[State.PENDING, State.BLOCKED],
                ).exclude(pk__in=[op.pk for op in created]).update(state=State.SUPERSEDED)
        except IntegrityError:
            # another worker wrote one of them meanwhile: the careful way, one at a time
            return [
                _operation(profile, object_type, document, operation, reference, job)
                for document, operation, reference in wanted
            ]
        found.update({op.idempotency_key: op for op in created})
    if job is not None:
        moved = [
            op
            for op in found.values()
            if op.pk is not None and op.job_id != job.pk and op.state != State.SUCCEEDED
        ]
        if moved:
            now = timezone.now()
            PushOperation.objects.filter(pk__in=[op.pk for op in moved]).update(job=job, updated_at=now)
            for op in moved:
                op.job, op.updated_at = job, now
    return [found[key] for key, *_ in keyed]


def _unsettled_ops(ops: Sequence[PushOperation]) -> set[int]:
    """`_unsettled` for several operations in one query: the pks of those whose document had something
    sent whose outcome we do not know (look before creating)."""
    flagged = {op.pk for op in ops if op.attempts and op.state in UNSETTLED}
    rest = [op for op in ops if op.pk not in flagged]
    if not rest:
        return flagged
    others = PushOperation.objects.filter(
        profile_id__in={op.profile_id for op in rest},
        object_type__in={op.object_type for op in rest},
        object_id__in={op.object_id for op in rest},
        attempts__gt=0,
        state__in=UNSETTLED,
    ).values_list("pk", "profile_id", "object_type", "object_id")
    sent: dict[tuple[int, str, int], set[int]] = {}
    for pk, profile_id, object_type, object_id in others:
        sent.setdefault((profile_id, object_type, object_id), set()).add(pk)
    for op in rest:
        if sent.get((op.profile_id, op.object_type, op.object_id), set()) - {op.pk}:
            flagged.add(op.pk)
    return flagged


def _unsettled(op: PushOperation) -> bool:
    """Was anything for this document sent whose outcome we do not know? Then look before creating."""
    if op.attempts and op.state in UNSETTLED:
        return True
    return (
        PushOperation.objects.filter(
            profile_id=op.profile_id,
            object_type=op.object_type,
            object_id=op.object_id,
            attempts__gt=0,
            state__in=UNSETTLED,
        )
        .exclude(pk=op.pk)
        .exists()
    )


# --- the outbox protocol ------------------------------------------------------------------------------
def _begin(op: PushOperation, payload: Any) -> bool:
    """Commit the intent before the request leaves. False when it already succeeded meanwhile."""
    with transaction.atomic():
        current = PushOperation.objects.select_for_update().get(pk=op.pk)
        if current.state == State.SUCCEEDED:
            return False
        current.state = State.IN_FLIGHT
        current.attempts += 1
        current.payload = payload
        current.error = ""
        current.save(update_fields=["state", "attempts", "payload", "error", "updated_at"])
    op.state, op.attempts, op.payload = current.state, current.attempts, payload
    return True


def _settle(
    op: PushOperation, state: str, error: str = "", *, response: Any = None, delay: float = 0
) -> None:
    op.state = state
    op.error = error[:4000]
    op.next_attempt_at = timezone.now() + timedelta(seconds=delay) if delay else None
    fields = ["state", "error", "next_attempt_at", "updated_at"]
    if response is not None:
        op.response = response
        fields.append("response")
    op.save(update_fields=fields)


def _succeed(
    op: PushOperation, ref: RemoteRef, *, deleted: bool = False, snapshot: dict[str, Any] | None = None
) -> None:
    """Bind the document to what the destination holds, in one transaction with the operation's state
    (with `snapshot`, the copy's values as written: see sync.snapshots)."""
    seen = {"snapshot": snapshot, "snapshot_at": timezone.now()} if snapshot is not None else {}
    with transaction.atomic():
        try:
            with transaction.atomic():
                Binding.objects.update_or_create(
                    connection_id=op.connection_id,
                    object_type=op.object_type,
                    object_id=op.object_id,
                    defaults={
                        "external_id": ref.external_id,
                        "external_number": (ref.number or "")[:100],
                        "remote_version": (ref.remote_version or "")[:100],
                        "document_version": op.document_version,
                        "raw_payload": ref.raw if isinstance(ref.raw, dict | list) else {},
                        "remote_deleted": deleted,
                        "is_origin": False,
                        **seen,
                    },
                )
        except IntegrityError:
            other = Binding.objects.filter(
                connection_id=op.connection_id, object_type=op.object_type, external_id=ref.external_id
            ).first()
            message = (
                f"the destination's {op.object_type} {ref.external_id} is already bound to "
                f"{op.object_type} {other.object_id if other else '?'}; not binding it twice"
            )
            _settle(op, State.FAILED, message, response=ref.raw)
            _duplicate_exception(op, ref, other)
            return
        op.external_id = ref.external_id[:255]
        op.remote_version = (ref.remote_version or "")[:100]
        op.response = ref.raw if isinstance(ref.raw, dict | list) else None
        op.state = State.SUCCEEDED
        op.error = ""
        op.next_attempt_at = None
        op.save()
        PushOperation.objects.filter(
            profile_id=op.profile_id, object_type=op.object_type, object_id=op.object_id, state__in=UNSETTLED
        ).exclude(pk=op.pk).update(state=State.SUPERSEDED, error="settled by a later operation")
    _resolve_exceptions(op)


def _resolve_exceptions(op: PushOperation) -> None:
    fingerprints = [
        exception_fingerprint(kind, op.profile_id, op.object_type, op.object_id)
        for kind in (Kind.SYNC_FAILURE, Kind.MAPPING_MISSING, Kind.CONFLICT)
    ]
    exceptions_resolve_by_system(
        ReconciliationException.objects.filter(fingerprint__in=fingerprints), reason="pushed cleanly"
    )


def _rows_update(model: Any, objs: Sequence[Any], names: Sequence[str]) -> None:
    """Save `names` of each of `objs` with one `executemany` of a plain UPDATE (Django's bulk_update
    builds a CASE per field and row, and costs more than the rest of a batch)."""
    if not objs:
        return
    using = router.db_for_write(model)
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    pk = model._meta.pk
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET "  # noqa: S608 - names from the model, values parameters
        f"{', '.join(f'{quote(f.column)} = %s' for f in fields)} WHERE {quote(pk.column)} = %s"
    )
    params = [
        [*(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields), obj.pk] for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _begin_many(items: Sequence[Prepared]) -> list[Prepared]:
    """`_begin` for a batch in one transaction: every intent (in_flight, attempts + 1, payload) is
    committed before the request leaves. Returns the items to send (not those succeeded meanwhile)."""
    if not items:
        return []
    started: list[tuple[Prepared, PushOperation]] = []
    with transaction.atomic():
        rows = PushOperation.objects.select_for_update().in_bulk([item.op.pk for item in items])
        now = timezone.now()
        for item in items:
            current = rows[item.op.pk]
            if current.state == State.SUCCEEDED:
                continue
            current.state = State.IN_FLIGHT
            current.attempts += 1
            current.payload = item.payload
            current.error = ""
            current.updated_at = now
            started.append((item, current))
        if started:
            _rows_update(
                PushOperation,
                [current for _, current in started],
                ["state", "attempts", "payload", "error", "updated_at"],
            )
    for item, current in started:
        item.op.state, item.op.attempts, item.op.payload = current.state, current.attempts, item.payload
    return [item for item, _ in started]


def _succeed_many(
    pairs: Sequence[tuple[PushOperation, RemoteRef]], copies: Mapping[int, dict[str, Any]] | None = None
) -> None:
    """`_succeed` for the creates of one batch answer, in one transaction: bindings written (with the
    snapshots in `copies`, by operation pk), operations succeeded, older unsettled ones superseded. A
    destination id already bound elsewhere (or a clash with a concurrent writer) goes through `_succeed`
    alone, which reports it."""
    if not pairs:
        return
    copies = copies or {}
    first = pairs[0][0]
    if len(pairs) == 1 or any(
        (op.connection_id, op.object_type, op.profile_id)
        != (first.connection_id, first.object_type, first.profile_id)
        for op, _ in pairs
    ):
        for op, ref in pairs:
            _succeed(op, ref, snapshot=copies.get(op.pk))
        return
    bound = dict(
        Binding.objects.filter(
            connection_id=first.connection_id,
            object_type=first.object_type,
            external_id__in=[ref.external_id for _, ref in pairs],
        ).values_list("external_id", "object_id")
    )
    clean: list[tuple[PushOperation, RemoteRef]] = []
    alone: list[tuple[PushOperation, RemoteRef]] = []
    for op, ref in pairs:
        if bound.get(ref.external_id, op.object_id) != op.object_id:
            alone.append((op, ref))
        else:
            bound[ref.external_id] = op.object_id
            clean.append((op, ref))
    try:
        with transaction.atomic():
            _bindings_write(first, clean, copies)
            now = timezone.now()
            for op, ref in clean:
                op.external_id = ref.external_id[:255]
                op.remote_version = (ref.remote_version or "")[:100]
                op.response = ref.raw if isinstance(ref.raw, dict | list) else None
                op.state = State.SUCCEEDED
                op.error = ""
                op.next_attempt_at = None
                op.updated_at = now
            _rows_update(
                PushOperation,
                [op for op, _ in clean],
                [
                    "external_id",
                    "remote_version",
                    "response",
                    "state",
                    "error",
                    "next_attempt_at",
                    "updated_at",
                ],
            )
            PushOperation.objects.filter(
                profile_id=first.profile_id,
                object_type=first.object_type,
                object_id__in=[op.object_id for op, _ in clean],
                state__in=UNSETTLED,
            ).exclude(pk__in=[op.pk for op, _ in clean]).update(
                state=State.SUPERSEDED, error="settled by a later operation"
            )
    except IntegrityError:
        for op, _ in clean:  # nothing of it was kept: each alone, the clash reported where it is
            op.refresh_from_db()
        alone = clean + alone
    else:
        fingerprints = [
            exception_fingerprint(kind, op.profile_id, op.object_type, op.object_id)
            for op, _ in clean
            for kind in (Kind.SYNC_FAILURE, Kind.MAPPING_MISSING, Kind.CONFLICT)
        ]
        exceptions_resolve_by_system(
            ReconciliationException.objects.filter(fingerprint__in=fingerprints), reason="pushed cleanly"
        )
    for op, ref in alone:
        _succeed(op, ref, snapshot=copies.get(op.pk))


def _bindings_write(
    first: PushOperation,
    pairs: Sequence[tuple[PushOperation, RemoteRef]],
    copies: Mapping[int, dict[str, Any]] | None = None,
) -> None:
    """The bindings `_succeed` writes (update_or_create), for a batch: one read, one insert, one update."""
    copies = copies or {}
    existing = {
        binding.object_id: binding
        for binding in Binding.objects.filter(
            connection_id=first.connection_id,
            object_type=first.object_type,
            object_id__in=[op.object_id for op, _ in pairs],
        )
    }
    now = timezone.now()
    fresh, changed = [], []
    for op, ref in pairs:
        values = {
            "external_id": ref.external_id,
            "external_number": (ref.number or "")[:100],
            "remote_version": (ref.remote_version or "")[:100],
            "document_version": op.document_version,
            "raw_payload": ref.raw if isinstance(ref.raw, dict | list) else {},
            "remote_deleted": False,
            "is_origin": False,
        }
        binding = existing.get(op.object_id)
        if op.pk in copies:
            values.update(snapshot=copies[op.pk], snapshot_at=now)
        if binding is None:
            fresh.append(
                Binding(
                    connection_id=op.connection_id,
                    object_type=op.object_type,
                    object_id=op.object_id,
                    **values,
                )
            )
        else:
            for name, value in values.items():
                setattr(binding, name, value)
            binding.last_synced_at = now
            changed.append(binding)
    if fresh:
        Binding.objects.bulk_create(fresh)
    if changed:
        names = [name for name in values if name not in ("snapshot", "snapshot_at")]
        _rows_update(Binding, changed, [*names, "snapshot", "snapshot_at", "last_synced_at"])


def _exception(
    op: PushOperation,
    kind: str,
    title: str,
    message: str,
    *,
    document: Any = None,
    severity: str = Severity.HIGH,
    details: dict[str, Any] | None = None,
) -> None:
    amount = getattr(document, "total", None) if document is not None else None
    if amount is None and document is not None:
        amount = getattr(document, "amount", None)
    exception_record(
        kind=kind,
        fingerprint=exception_fingerprint(kind, op.profile_id, op.object_type, op.object_id),
        title=title,
        message=message,
        severity=severity,
        connection=op.connection,
        job=op.job,
        object_type=op.object_type,
        object_id=op.object_id,
        document_number=getattr(document, "number", "") or getattr(document, "reference", "") or "",
        external_id=op.external_id,
        currency=getattr(document, "currency", "") or "",
        amount_at_risk=amount,
        details={"operation": op.pk, "idempotency_key": op.idempotency_key, **(details or {})},
    )


def _duplicate_exception(op: PushOperation, ref: RemoteRef, other: Binding | None) -> None:
    _exception(
        op,
        Kind.DUPLICATE,
        f"{op.object_type.replace('_', ' ').capitalize()} {op.reference}: the destination's "
        f"{ref.external_id} already belongs to another document",
        "Two documents share a reference in the destination. Set a number prefix on the mapping set, "
        "or resolve the duplicate by hand.",
        details={"external_id": ref.external_id, "bound_to": other.object_id if other else None},
    )


def _looked_up(connector: Any, op: PushOperation) -> RemoteRef | None:
    if not op.reference:
        return None
    return connector.find_by_reference(op.object_type, op.reference)


def _verified(connector: Any, op: PushOperation, payload: Any) -> RemoteRef | None:
    """After a conflict on a retried update or void: did our earlier request land? Then it is done."""
    try:
        change = connector.fetch(op.object_type, op.external_id or _bound_id(op))
    except NotFoundError:
        return RemoteRef(external_id=op.external_id or _bound_id(op)) if op.operation != Op.UPDATE else None
    if op.operation in (Op.VOID, Op.DELETE):
        status = getattr(change.record, "status", "")
        if change.deleted or status in GONE:
            return RemoteRef(
                external_id=change.external_id, remote_version=change.remote_version, raw=change.raw
            )
        return None
    if not copy_matches(payload, change.raw):
        return None
    return RemoteRef(external_id=change.external_id, remote_version=change.remote_version, raw=change.raw)


def _last_written(op: PushOperation, binding: Binding) -> PushOperation | None:
    """The write that left the copy as the binding knows it (its payload is what we sent)."""
    return (
        PushOperation.objects.filter(
            profile_id=op.profile_id,
            connection_id=op.connection_id,
            object_type=op.object_type,
            object_id=op.object_id,
            document_version=binding.document_version,
            operation__in=[Op.CREATE, Op.UPDATE],
            state=State.SUCCEEDED,
        )
        .exclude(payload=None)
        .exclude(pk=op.pk)
        .order_by("-pk")
        .first()
    )


def _same_payload(op: PushOperation, binding: Binding, payload: Any) -> bool:
    """Would an update send exactly what was last written? (a new version of the document that changed
    nothing the destination is sent: a status or an amount paid, which the destination keeps itself)"""
    written = _last_written(op, binding)
    if written is None:
        return False
    new, old = comparable(payload), comparable(written.payload)
    return not mapping.payload_diff(new, old) and not mapping.payload_diff(old, new)


def _moved_by_itself(connector: Any, op: PushOperation, binding: Binding) -> str | None:
    """After an update refused as a conflict: the copy's new remote version when its content is still
    what we last wrote (a payment applied there moves QuickBooks' SyncToken and Xero's UpdatedDateUTC,
    and changes nothing we sent), None when someone changed it there (a real conflict)."""
    written = _last_written(op, binding)
    if written is None:
        return None
    try:
        change = connector.fetch(op.object_type, binding.external_id)
    except NotFoundError:
        return None
    if not change.remote_version or change.remote_version == binding.remote_version:
        return None
    return change.remote_version if copy_matches(written.payload, change.raw) else None


def comparable(payload: Any) -> Any:
    if isinstance(payload, dict):
        return {k: comparable(v) for k, v in payload.items() if k not in VOLATILE_KEYS}
    if isinstance(payload, list):
        return [comparable(v) for v in payload]
    return payload


def copy_matches(sent: Any, raw: Any) -> bool:
    """Does the destination's copy (`raw`, as read) still hold what was sent? Only what the payload
    carries is compared, against the matching fields of the copy: keys the platform adds or rotates
    (ids, versions, balances, links to payments) and lines it adds of its own (QuickBooks' subtotal
    line) are not differences; a line someone added, removed or changed there is."""
    return _matches(comparable(sent), unwrap(raw))


def _matches(sent: Any, copy: Any) -> bool:
    if isinstance(sent, dict):
        if not isinstance(copy, dict):
            return False
        # a key the copy does not echo back says nothing either way
        return all(_matches(value, copy[key]) for key, value in sent.items() if key in copy)
    if isinstance(sent, list):
        if not isinstance(copy, list):
            return False
        own = [item for item in copy if not _platform_line(item)]
        return len(own) == len(sent) and all(_matches(a, b) for a, b in zip(sent, own, strict=True))
    if sent is None or sent == "":
        return copy is None or copy == ""
    return not mapping.payload_diff(sent, copy) or _same_day(sent, copy)


def _platform_line(item: Any) -> bool:
    return isinstance(item, dict) and item.get("DetailType") in PLATFORM_LINES


def _same_day(sent: Any, copy: Any) -> bool:
    """An ISO date sent, read back in the platform's own form (Xero's "/Date(1790812800000+0000)/")."""
    if not isinstance(sent, str) or not isinstance(copy, str):
        return False
    match = MS_DATE.fullmatch(copy.strip())
    if match is None:
        return False
    day = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()
    return day.isoformat() == sent[:10]


def unwrap(raw: Any) -> Any:
    """A record's body without the platform's envelope ({"Invoice": {...}}, {"Invoices": [x]})."""
    if isinstance(raw, dict) and len(raw) <= 2:
        for value in raw.values():
            if isinstance(value, dict):
                return value
            if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
                return value[0]
    return raw


def _bound_id(op: PushOperation) -> str:
    binding = Binding.objects.filter(
        connection_id=op.connection_id, object_type=op.object_type, object_id=op.object_id
    ).first()
    return binding.external_id if binding else ""


@dataclass
class Prepared:
    """One document ready to send: its operation, the exact payload and what the send needs."""

    op: PushOperation
    document: Any
    record: Any
    context: PushContext
    payload: Any
    binding: Binding | None = None


def _send(connector: Any, item: Prepared) -> RemoteRef:
    op, binding = item.op, item.binding
    if op.operation == Op.CREATE:
        if op.object_type == ObjectType.PAYMENT:
            return connector.record_payment(item.record, item.context, idempotency_key=op.idempotency_key)
        return connector.create(op.object_type, item.payload, idempotency_key=op.idempotency_key)
    assert binding is not None
    if op.operation == Op.UPDATE:
        return connector.update(
            op.object_type,
            binding.external_id,
            item.payload,
            remote_version=binding.remote_version,
            idempotency_key=op.idempotency_key,
        )
    if op.operation == Op.VOID:
        method = connector.void if connector.supports(op.object_type, "void") else connector.delete
        return method(
            op.object_type,
            binding.external_id,
            remote_version=binding.remote_version,
            idempotency_key=op.idempotency_key,
        )
    if op.operation == Op.ALLOCATE:
        refs = connector.allocate_credit_note(
            binding.external_id, item.record, item.context, idempotency_key=op.idempotency_key
        )
        return RemoteRef(
            external_id=binding.external_id,
            remote_version=binding.remote_version,
            raw={"allocations": [r.external_id for r in refs]},
        )
    raise ValueError(f"unknown operation {op.operation}")


def _copy(connector: Any, item: Prepared, ref: RemoteRef) -> dict[str, Any] | None:
    """The snapshot of the copy a write left (sync.snapshots): the document as pushed, overlaid with
    the destination's answer. None for customers."""
    return snapshots.pushed_snapshot(
        connector,
        item.op.object_type,
        item.document,
        item.context,
        ref.raw,
        connection_id=item.op.connection_id,
    )


def execute(
    connector: Any,
    item: Prepared,
    report: PushReport,
    *,
    unsettled: bool | None = None,
    refreshed: bool = False,
) -> None:
    """Send one operation under the protocol in the module docstring. `unsettled`: whether anything for
    the document was sent with an unknown outcome, when the caller looked it up for a whole page;
    `refreshed`: the binding's remote version was just taken from the copy (an update's second go)."""
    op = item.op
    if op.operation in (Op.CREATE,) and (_unsettled(op) if unsettled is None else unsettled):
        found = _looked_up(connector, op)
        if found is not None:
            _found(connector, item, found, report)
            return
    if (
        op.operation == Op.UPDATE
        and item.binding is not None
        and _same_payload(op, item.binding, item.payload)
    ):
        # nothing to send: the binding moves to this version, the copy and its snapshot stay as they are
        binding = item.binding
        op.payload = item.payload
        kept = RemoteRef(
            external_id=binding.external_id,
            number=binding.external_number,
            remote_version=binding.remote_version,
            raw=binding.raw_payload,
        )
        _succeed(op, kept)
        report.count("skipped")
        return
    if not _begin(op, item.payload):
        report.count("skipped")
        return
    crash_point("before_request", op)
    try:
        ref = _send(connector, item)
    except UncertainError as exc:
        _settle(op, State.UNCERTAIN, str(exc))
        report.count("failed")
        report.messages.append(f"{op}: outcome unknown, verified by lookup before any retry")
        return
    except RetryableError as exc:
        _settle(op, State.RETRY_SCHEDULED, str(exc), delay=exc.retry_after or RETRY_DELAY.total_seconds())
        raise PushPaused(f"{op.connection} asked us to wait: {exc}", exc.retry_after) from exc
    except ConflictError as exc:
        verified = _verified(connector, op, item.payload) if op.attempts > 1 else None
        if verified is not None:
            _succeed(
                op, verified, deleted=op.operation == Op.DELETE, snapshot=_copy(connector, item, verified)
            )
            report.count("updated")
            return
        moved = None
        if op.operation == Op.UPDATE and item.binding is not None and not refreshed:
            moved = _moved_by_itself(connector, op, item.binding)
        if moved is not None:
            item.binding.remote_version = moved[:100]
            item.binding.save(update_fields=["remote_version", "last_synced_at"])
            execute(connector, item, report, refreshed=True)
            return
        _settle(op, State.FAILED, str(exc))
        _exception(
            op,
            Kind.CONFLICT,
            f"{document_label(op.object_type, item.document)} changed in the destination since it was "
            "last written",
            f"{exc} Nothing was overwritten. Compare the two, then re-push or accept the destination's "
            "version with an override.",
            document=item.document,
        )
        report.count("failed")
        return
    except NotFoundError as exc:
        if op.operation in (Op.VOID, Op.DELETE):
            gone = RemoteRef(external_id=item.binding.external_id if item.binding else "")
            _succeed(op, gone, deleted=True, snapshot=_copy(connector, item, gone))
            report.count("updated")
            return
        _fail(op, item, exc, report)
        return
    except PermanentError as exc:
        _fail(op, item, exc, report)
        return
    crash_point("after_write", op)
    _succeed(op, ref, deleted=op.operation == Op.DELETE, snapshot=_copy(connector, item, ref))
    crash_point("after_commit", op)
    report.count("created" if op.operation == Op.CREATE else "updated")


def _found(connector: Any, item: Prepared, found: RemoteRef, report: PushReport) -> None:
    """A create that follows an unknown outcome found its document in the destination: bind it at the
    version that was sent (the oldest one that may have landed, should several have been sent), so a
    newer version of the document goes next as an update, never left unsent behind a stale copy."""
    op = item.op
    sent = (
        PushOperation.objects.filter(
            profile_id=op.profile_id,
            connection_id=op.connection_id,
            object_type=op.object_type,
            object_id=op.object_id,
            operation=Op.CREATE,
            attempts__gt=0,
            state__in=UNSETTLED,
        )
        .order_by("document_version", "pk")
        .first()
    )
    if sent is None or sent.pk == op.pk or sent.document_version >= op.document_version:
        _succeed(op, found, snapshot=_copy(connector, item, found))
        report.count("created")
        return
    _succeed(sent, found, snapshot=_copy(connector, item, found))
    if sent.state != State.SUCCEEDED:  # the id there belongs to another document: reported as such
        report.count("failed")
        return
    _settle(op, State.SUPERSEDED, f"version {sent.document_version} was found there; updated next")
    report.pending_updates.append((op.object_type, op.object_id))
    report.count("created")


def _fail(op: PushOperation, item: Prepared, exc: ConnectorError, report: PushReport) -> None:
    _settle(op, State.FAILED, str(exc))
    details: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, ValidationError):
        details.update(field=exc.field, value=str(exc.value))
    _exception(
        op,
        Kind.SYNC_FAILURE,
        f"{document_label(op.object_type, item.document)} was refused by {op.connection}",
        f"{exc}. Fix the document or its mapping, then use 'Retry failed items' on the job.",
        document=item.document,
        details=details,
    )
    report.count("failed")


def execute_batch(connector: Any, items: Sequence[Prepared], report: PushReport) -> None:
    """Creates sent several to a request (Xero 50 a call, QuickBooks batches of 30), same protocol: the
    intents of the whole batch committed in one transaction before it leaves, the bindings of the whole
    answer in one transaction straight after it."""
    unsettled = _unsettled_ops([item.op for item in items])
    fresh = [item for item in items if item.op.pk not in unsettled]
    for item in items:
        if item.op.pk in unsettled:
            execute(connector, item, report, unsettled=True)
    started = _begin_many(fresh)
    if not started:
        return
    object_type = started[0].op.object_type
    key = hashlib.sha256("".join(item.op.idempotency_key for item in started).encode()).hexdigest()[:40]
    for item in started:
        crash_point("before_request", item.op)
    try:
        results = connector.create_many(object_type, [item.payload for item in started], idempotency_key=key)
    except UncertainError as exc:
        for item in started:
            _settle(item.op, State.UNCERTAIN, str(exc))
            report.count("failed")
        return
    except RetryableError as exc:
        for item in started:
            _settle(
                item.op, State.RETRY_SCHEDULED, str(exc), delay=exc.retry_after or RETRY_DELAY.total_seconds()
            )
        raise PushPaused(f"{started[0].op.connection} asked us to wait: {exc}", exc.retry_after) from exc
    except PermanentError as exc:
        for item in started:
            _fail(item.op, item, exc, report)
        return
    made: list[tuple[PushOperation, RemoteRef]] = []
    copies: dict[int, dict[str, Any]] = {}
    for item, result in zip(started, results, strict=True):
        if isinstance(result, ConnectorError):
            _fail(item.op, item, result, report)
            continue
        crash_point("after_write", item.op)
        made.append((item.op, result))
        copy = _copy(connector, item, result)
        if copy is not None:
            copies[item.op.pk] = copy
    _succeed_many(made, copies)
    for op, _ in made:
        crash_point("after_commit", op)
        report.count("created")


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


class Unmatched(Exception):
    def __init__(self, payment: Payment) -> None:
        super().__init__(f"payment {payment.reference} matches no invoice")
        self.payment = payment


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
