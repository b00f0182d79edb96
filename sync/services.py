"""Writing canonical documents from canonical records: the one path every source goes through.

`records_write` takes a page of records from one connection and, in one transaction, creates what is new,
updates what changed (with history, bumping `row_version`), skips what is unchanged (same content hash),
and binds each document to its external id. Pages keep writes in bulk: one commit per row is what makes a
sync slow.

The bulk writes avoid the ORM's per-value work where it costs most and changes nothing: history rows of
created documents are copied by the database from the rows just inserted (`INSERT ... SELECT`, the same
values django-simple-history's `bulk_history_create` writes, one statement per 500 rows instead of a model
instance per row), and bindings are inserted with `executemany` from values prepared once per page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from simple_history.utils import bulk_create_with_history as _simple_bulk_create_with_history

from connectors.base import (
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    content_hash,
    record_to_dict,
)
from sync import snapshots
from sync.models import (
    Binding,
    CreditAllocation,
    CreditNote,
    CreditNoteLine,
    Customer,
    Invoice,
    InvoiceLine,
    ObjectType,
    Payment,
    PaymentAllocation,
)

ZERO = Decimal(0)
IMPORT_REASON = "created from the source"
UPDATE_REASON = "updated from the source"
Record = InvoiceRecord | PaymentRecord | CreditNoteRecord | CustomerRecord


@dataclass
class WriteResult:
    created: list[Any] = field(default_factory=list)
    updated: list[Any] = field(default_factory=list)
    unchanged: list[Any] = field(default_factory=list)
    # (record, invoice number) for allocations whose invoice is not known yet
    unmatched_allocations: list[tuple[Record, str]] = field(default_factory=list)
    unallocated_payments: list[tuple[PaymentRecord, Payment]] = field(default_factory=list)

    def merge(self, other: WriteResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.unmatched_allocations += other.unmatched_allocations
        self.unallocated_payments += other.unallocated_payments

    @property
    def documents(self) -> list[Any]:
        return [*self.created, *self.updated, *self.unchanged]


# --- bulk inserts -------------------------------------------------------------------------------------
CHUNK = 500  # ids per `IN (...)` list: below every backend's limit on query parameters


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _history_copyable(model: type[models.Model], using: str) -> bool:
    """Can the database copy this model's history rows itself? (an auto-increment history id, and a
    backend that gives the ids of bulk-inserted rows back)"""
    history = getattr(model, "history", None)
    return (
        history is not None
        and isinstance(history.model._meta.pk, models.AutoField)
        and connections[using].features.can_return_rows_from_bulk_insert
    )


def _history_insert(model: type[models.Model], objs: Sequence[Any], reason: str, using: str) -> None:
    """'+' history rows for `objs`, rows just inserted: the database copies each row's tracked columns
    into the history table, with the date, reason and user `bulk_history_create` would give them."""
    if not objs or not getattr(settings, "SIMPLE_HISTORY_ENABLED", True):
        return
    history = model.history.model  # type: ignore[attr-defined]
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = history._meta
    tracked = list(history.tracked_fields)
    target = [quote(meta.get_field(f.name).column) for f in tracked]
    source = [quote(f.column) for f in tracked]
    extra: list[tuple[models.Field, Any]] = [
        (meta.get_field("history_date"), timezone.now()),
        (meta.get_field("history_change_reason"), reason),
        (meta.get_field("history_type"), "+"),
    ]
    user = history.get_default_history_user(objs[0])
    if user is not None:
        user_field = meta.get_field("history_user")
        extra.append((user_field, getattr(user, user_field.target_field.attname)))
    names = [*target, *(quote(f.column) for f, _ in extra)]
    values = [f.get_db_prep_save(value, connection) for f, value in extra]
    pk = quote(model._meta.pk.column)
    table = quote(model._meta.db_table)
    with connection.cursor() as cursor:
        for ids in _chunks([obj.pk for obj in objs]):
            cursor.execute(
                # names from the models' own metadata, quoted; every value a parameter
                f"INSERT INTO {quote(meta.db_table)} ({', '.join(names)}) "  # noqa: S608
                f"SELECT {', '.join(source)}, {', '.join(['%s'] * len(values))} FROM {table} "
                f"WHERE {pk} IN ({', '.join(['%s'] * len(ids))}) ORDER BY {pk}",
                [*values, *ids],
            )


def bulk_create_with_history(
    objs: Sequence[Any], model: type[models.Model], *, default_change_reason: str = ""
) -> list[Any]:
    """Bulk create `objs` and their '+' history rows in one transaction (what simple_history's
    `bulk_create_with_history` does, with the history rows copied by the database)."""
    objs = list(objs)
    using = router.db_for_write(model)
    if not objs:
        return objs
    if not _history_copyable(model, using):
        return _simple_bulk_create_with_history(objs, model, default_change_reason=default_change_reason)
    with transaction.atomic(using=using, savepoint=False):
        created = model._default_manager.using(using).bulk_create(objs)
        _history_insert(model, created, default_change_reason, using)
    return created


def _bindings_insert(
    rows: Sequence[tuple[Any, str, int, str, str, str, dict[str, Any]]], *, is_origin: bool
) -> None:
    """Insert bindings (connection, object type, object id, external id, number, content hash, snapshot)
    with one `executemany`: the columns every row shares are prepared once by their fields."""
    if not rows:
        return
    using = router.db_for_write(Binding)
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = Binding._meta
    now = timezone.now()
    shared = {
        "is_origin": is_origin,
        "remote_version": "",
        "raw_payload": {},
        "remote_deleted": False,
        "document_version": None,
        "first_seen_at": now,
        "last_synced_at": now,
    }
    shared_values = []
    for name, value in shared.items():
        field_ = meta.get_field(name)
        if value is None:
            value = field_.get_default()
        shared_values.append(field_.get_db_prep_save(value, connection))
    snapshot_field = meta.get_field("snapshot")
    stamp = meta.get_field("snapshot_at").get_db_prep_save(now, connection)
    varying = [
        "connection",
        "object_type",
        "object_id",
        "external_id",
        "external_number",
        "content_hash",
        "snapshot",
        "snapshot_at",
    ]
    columns = [quote(meta.get_field(name).column) for name in [*varying, *shared]]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "  # noqa: S608 - names from the model
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    params = [
        (
            connection_.pk if hasattr(connection_, "pk") else connection_,
            str(object_type),
            int(object_id),
            external_id,
            number,
            digest,
            snapshot_field.get_db_prep_save(snapshot, connection),
            stamp if snapshot else None,
            *shared_values,
        )
        for connection_, object_type, object_id, external_id, number, digest, snapshot in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


# --- customers ----------------------------------------------------------------------------------------
def _customer_key(record: CustomerRecord) -> str:
    return record.email.lower() if record.email else f"name:{record.name.casefold()}"


def customers_resolve(records: Iterable[CustomerRecord]) -> dict[str, Customer]:
    """Match by email, then by exact name; create the rest in bulk. Keys are `_customer_key`."""
    wanted = {_customer_key(r): r for r in records}
    emails = [r.email.lower() for r in wanted.values() if r.email]
    names = [r.name for r in wanted.values() if not r.email]
    found: dict[str, Customer] = {}
    matches = Customer.objects.annotate(email_lower=Lower("email")).filter(email_lower__in=emails)
    for customer in matches.order_by("pk"):
        found.setdefault(customer.email.lower(), customer)
    for customer in Customer.objects.filter(name__in=names):
        found.setdefault(f"name:{customer.name.casefold()}", customer)
    missing = [
        Customer(name=r.name, email=r.email, tax_number=r.tax_number, currency=r.currency)
        for key, r in wanted.items()
        if key not in found
    ]
    for customer in bulk_create_with_history(missing, Customer, default_change_reason=IMPORT_REASON):
        found[customer.email.lower() if customer.email else f"name:{customer.name.casefold()}"] = customer
    return found


# --- shared helpers -----------------------------------------------------------------------------------
def _bindings(connection: Any, object_type: str, keys: Sequence[str]) -> dict[str, Binding]:
    rows = Binding.objects.filter(connection=connection, object_type=object_type, external_id__in=keys)
    return {binding.external_id: binding for binding in rows}


def _split(
    connection: Any, object_type: str, records: Sequence[Record]
) -> tuple[list[Record], list[tuple[Record, Binding]], list[tuple[Record, Binding]], dict[str, str]]:
    hashes = {r.external_id: content_hash(r) for r in records}
    bindings = _bindings(connection, object_type, list(hashes))
    new, changed, unchanged = [], [], []
    for record in records:
        binding = bindings.get(record.external_id)
        if binding is None:
            new.append(record)
        elif binding.content_hash != hashes[record.external_id] or binding.remote_deleted:
            changed.append((record, binding))
        else:
            unchanged.append((record, binding))
    return new, changed, unchanged, hashes


def _bind(
    connection: Any,
    object_type: str,
    pairs: list[tuple[Record, Any]],
    hashes: dict[str, str],
    by_id: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Origin bindings of new documents, each with the snapshot of the record as read (`snapshots` by
    external id in `by_id` where the caller built them, else from the record itself)."""
    _bindings_insert(
        [
            (
                connection,
                object_type,
                document.pk,
                record.external_id,
                getattr(record, "number", "") or getattr(record, "reference", ""),
                hashes[record.external_id],
                by_id[record.external_id]
                if by_id is not None
                else snapshots.record_snapshot(object_type, record),
            )
            for record, document in pairs
        ],
        is_origin=True,
    )


def _rebind(binding: Binding, digest: str, snapshot: dict[str, Any] | None = None) -> None:
    # An origin binding's payload is the document's own raw_payload; it is not stored twice.
    binding.content_hash = digest
    binding.remote_deleted = False
    fields = ["content_hash", "remote_deleted", "last_synced_at"]
    if snapshot is not None:
        binding.snapshot, binding.snapshot_at = snapshot, timezone.now()
        fields += ["snapshot", "snapshot_at"]
    binding.save(update_fields=fields)


def _read(object_type: str, record: Record, customer: Customer | None) -> dict[str, Any]:
    """The snapshot of a record as read, naming its customer as the canonical customer it resolved to."""
    key = snapshots.customer_key(customer) if customer is not None else None
    if object_type == ObjectType.INVOICE:
        return snapshots.invoice_snapshot(record, customer=key)
    return snapshots.credit_note_snapshot(record, customer=key)


def _snapshots_fill(model: type, object_type: str, unchanged: Sequence[tuple[Record, Binding]]) -> None:
    """Bindings written before snapshots existed get the snapshot of the unchanged record read now."""
    blank = [(r, b) for r, b in unchanged if not b.snapshot]
    if not blank:
        return
    documents = model.objects.select_related("customer").in_bulk([b.object_id for _, b in blank])
    snapshots.snapshots_write(
        [
            (b.pk, _read(object_type, r, getattr(documents.get(b.object_id), "customer", None)))
            for r, b in blank
        ]
    )


def _raw(record: Record) -> Any:
    return record.raw if record.raw is not None else record_to_dict(record)


def _line_values(line: LineRecord) -> dict[str, Any]:
    return {
        "line_number": line.line_number,
        "description": line.description,
        "item_code": line.item_code,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "tax_rate": line.tax_rate,
        "subtotal": line.subtotal,
        "tax_amount": line.tax_amount,
        "total": line.total,
    }


def _lines_replace(parent: Any, line_model: type, parent_field: str, lines: Sequence[LineRecord]) -> None:
    """Bring a document's lines in line with the record: update, add, delete, each with history."""
    existing = {line.line_number: line for line in line_model.objects.filter(**{parent_field: parent})}
    for record in lines:
        values = _line_values(record)
        line = existing.pop(record.line_number, None)
        if line is None:
            line_model.objects.create(**{parent_field: parent}, **values)
        elif any(getattr(line, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(line, name, value)
            line.save()
    for leftover in existing.values():
        leftover.delete()


def _set(document: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(document, name, value)
    document.row_version += 1
    document._change_reason = UPDATE_REASON
    document.save()


# --- invoices -----------------------------------------------------------------------------------------
def _invoice_values(record: InvoiceRecord, customer: Customer, digest: str) -> dict[str, Any]:
    return {
        "number": record.number,
        "customer": customer,
        "issue_date": record.issue_date,
        "due_date": record.due_date,
        "status": record.status,
        "currency": record.currency,
        "subtotal": record.subtotal,
        "tax_total": record.tax_total,
        "total": record.total,
        "lines_total": record.lines_total,
        "amount_paid": record.amount_paid,
        "amount_due": record.amount_due,
        "memo": record.memo,
        "raw_payload": _raw(record),
        "content_hash": digest,
    }


def _invoices_write(connection: Any, records: Sequence[InvoiceRecord], result: WriteResult) -> None:
    new, changed, unchanged, hashes = _split(connection, ObjectType.INVOICE, records)
    customers = customers_resolve(r.customer for r in [*new, *(r for r, _ in changed)])  # type: ignore[union-attr]
    created = bulk_create_with_history(
        [
            Invoice(
                source_connection=connection,
                **_invoice_values(r, customers[_customer_key(r.customer)], hashes[r.external_id]),
            )  # type: ignore[union-attr,arg-type]
            for r in new
        ],
        Invoice,
        default_change_reason=IMPORT_REASON,
    )
    bulk_create_with_history(
        [
            InvoiceLine(invoice=invoice, **_line_values(line))
            for record, invoice in zip(new, created, strict=True)
            for line in record.lines
        ],  # type: ignore[union-attr]
        InvoiceLine,
        default_change_reason=IMPORT_REASON,
    )
    read = {
        r.external_id: _read(ObjectType.INVOICE, r, c.customer) for r, c in zip(new, created, strict=True)
    }
    _bind(connection, ObjectType.INVOICE, list(zip(new, created, strict=True)), hashes, read)
    result.created += created
    documents = Invoice.objects.in_bulk([b.object_id for _, b in [*changed, *unchanged]])
    for record, binding in changed:
        invoice = documents[binding.object_id]
        digest = hashes[record.external_id]
        _set(invoice, _invoice_values(record, customers[_customer_key(record.customer)], digest))  # type: ignore[union-attr,arg-type]
        _lines_replace(invoice, InvoiceLine, "invoice", record.lines)  # type: ignore[union-attr]
        _rebind(binding, digest, _read(ObjectType.INVOICE, record, invoice.customer))
        result.updated.append(invoice)
    _snapshots_fill(Invoice, ObjectType.INVOICE, unchanged)
    result.unchanged += [documents[b.object_id] for _, b in unchanged]


# --- credit notes -------------------------------------------------------------------------------------
_EXTERNAL = "\x00id:"  # key prefix for invoices found by their external id rather than their number


def _invoices_for(connection: Any, allocations: Iterable[Any]) -> dict[str, Invoice]:
    """The invoices allocations point at: by the invoice's id at this connection when the platform gives
    it (keyed `_EXTERNAL + id`), else by number."""
    allocations = list(allocations)
    found = _invoices_by_number(connection, [a.invoice_number for a in allocations])
    ids = {a.invoice_external_id for a in allocations} - {""}
    if ids:
        bound = dict(
            Binding.objects.filter(
                connection=connection, object_type=ObjectType.INVOICE, external_id__in=ids
            ).values_list("external_id", "object_id")
        )
        by_pk = Invoice.objects.in_bulk(list(bound.values()))
        found.update({_EXTERNAL + key: by_pk[pk] for key, pk in bound.items() if pk in by_pk})
    return found


def _invoices_by_number(connection: Any, numbers: Iterable[str]) -> dict[str, Invoice]:
    """Invoices this connection knows by number; otherwise any invoice whose number is unique."""
    numbers = set(numbers) - {""}
    bound = dict(
        Binding.objects.filter(
            connection=connection, object_type=ObjectType.INVOICE, external_id__in=numbers
        ).values_list("external_id", "object_id")
    )
    by_pk = Invoice.objects.in_bulk(list(bound.values()))
    found = {number: by_pk[pk] for number, pk in bound.items() if pk in by_pk}
    rest = numbers - found.keys()
    if rest:
        candidates: dict[str, list[Invoice]] = {}
        for invoice in Invoice.objects.filter(number__in=rest):
            candidates.setdefault(invoice.number, []).append(invoice)
        found.update({number: matches[0] for number, matches in candidates.items() if len(matches) == 1})
    return found


def _credit_note_values(
    record: CreditNoteRecord, customer: Customer, invoice: Invoice | None, digest: str
) -> dict[str, Any]:
    return {
        "number": record.number,
        "customer": customer,
        "issue_date": record.issue_date,
        "status": record.status,
        "currency": record.currency,
        "original_invoice": invoice,
        "subtotal": record.subtotal,
        "tax_total": record.tax_total,
        "total": record.total,
        "lines_total": sum((line.total for line in record.lines), ZERO),
        "remaining_credit": record.remaining_credit,
        "memo": record.memo,
        "raw_payload": _raw(record),
        "content_hash": digest,
    }


def _allocation_invoice(allocation: Any, invoices: dict[str, Invoice]) -> Invoice | None:
    """The invoice an allocation points at: by its id at the connection when given, else by number."""
    invoice = None
    if allocation.invoice_external_id:
        invoice = invoices.get(_EXTERNAL + allocation.invoice_external_id)
    return invoice if invoice is not None else invoices.get(allocation.invoice_number)


def _allocations_wanted(
    record: PaymentRecord | CreditNoteRecord,
    invoices: dict[str, Invoice],
    default_date: Any,
    result: WriteResult,
) -> dict[Invoice, tuple[Decimal, Any]]:
    """The record's allocations to known invoices; the others are noted as unmatched on `result`."""
    wanted = {}
    for allocation in record.allocations:
        invoice = _allocation_invoice(allocation, invoices)
        if invoice is None:
            result.unmatched_allocations.append((record, allocation.invoice_number))
        else:
            wanted[invoice] = (allocation.amount, allocation.allocated_on or default_date)
    return wanted


def _allocations_replace(
    document: Any, model: type, parent_field: str, allocations: dict[Invoice, tuple[Decimal, Any]]
) -> None:
    existing = {a.invoice_id: a for a in model.objects.filter(**{parent_field: document})}
    for invoice, (amount, allocated_on) in allocations.items():
        allocation = existing.pop(invoice.pk, None)
        if allocation is None:
            model.objects.create(
                **{parent_field: document}, invoice=invoice, amount=amount, allocated_on=allocated_on
            )
        elif allocation.amount != amount or allocation.allocated_on != allocated_on:
            allocation.amount, allocation.allocated_on = amount, allocated_on
            allocation.save()
    for leftover in existing.values():
        leftover.delete()


def _credit_notes_write(connection: Any, records: Sequence[CreditNoteRecord], result: WriteResult) -> None:
    new, changed, unchanged, hashes = _split(connection, ObjectType.CREDIT_NOTE, records)
    touched: list[CreditNoteRecord] = [*new, *(r for r, _ in changed)]  # type: ignore[list-item]
    customers = customers_resolve(r.customer for r in touched)
    invoices = _invoices_for(connection, [a for r in touched for a in r.allocations])
    invoices.update(_invoices_by_number(connection, [r.original_invoice_number for r in touched]))
    created = bulk_create_with_history(
        [
            CreditNote(
                source_connection=connection,
                **_credit_note_values(
                    r,
                    customers[_customer_key(r.customer)],
                    invoices.get(r.original_invoice_number),
                    hashes[r.external_id],
                ),
            )
            for r in new  # type: ignore[union-attr]
        ],
        CreditNote,
        default_change_reason=IMPORT_REASON,
    )
    bulk_create_with_history(
        [
            CreditNoteLine(credit_note=note, **_line_values(line))
            for record, note in zip(new, created, strict=True)
            for line in record.lines
        ],  # type: ignore[union-attr]
        CreditNoteLine,
        default_change_reason=IMPORT_REASON,
    )
    read = {
        r.external_id: _read(ObjectType.CREDIT_NOTE, r, c.customer) for r, c in zip(new, created, strict=True)
    }
    _bind(connection, ObjectType.CREDIT_NOTE, list(zip(new, created, strict=True)), hashes, read)
    documents = CreditNote.objects.in_bulk([b.object_id for _, b in [*changed, *unchanged]])
    pairs: list[tuple[CreditNoteRecord, CreditNote]] = list(zip(new, created, strict=True))  # type: ignore[arg-type]
    for record, binding in changed:
        note = documents[binding.object_id]
        digest = hashes[record.external_id]
        _set(
            note,
            _credit_note_values(
                record,
                customers[_customer_key(record.customer)],
                invoices.get(record.original_invoice_number),
                digest,
            ),
        )  # type: ignore[union-attr,arg-type]
        _lines_replace(note, CreditNoteLine, "credit_note", record.lines)  # type: ignore[union-attr]
        _rebind(binding, digest, _read(ObjectType.CREDIT_NOTE, record, note.customer))
        pairs.append((record, note))  # type: ignore[arg-type]
        result.updated.append(note)
    for record, note in pairs:
        wanted = _allocations_wanted(record, invoices, record.issue_date, result)
        _allocations_replace(note, CreditAllocation, "credit_note", wanted)
    _snapshots_fill(CreditNote, ObjectType.CREDIT_NOTE, unchanged)
    result.created += created
    result.unchanged += [documents[b.object_id] for _, b in unchanged]


# --- payments -----------------------------------------------------------------------------------------
def _payment_values(record: PaymentRecord, customer: Customer | None, digest: str) -> dict[str, Any]:
    return {
        "reference": record.reference,
        "customer": customer,
        "transaction_date": record.transaction_date,
        "currency": record.currency,
        "amount": record.amount,
        "unapplied_amount": record.amount,
        "status": record.status,
        "method": record.method,
        "processor_transaction_id": record.processor_transaction_id,
        "fee": record.fee,
        "payout_id": record.payout_id,
        "memo": record.memo,
        "raw_payload": _raw(record),
        "content_hash": digest,
    }


def _payment_snapshots(
    connection: Any,
    records: Sequence[PaymentRecord],
    invoices: dict[str, Invoice],
    customers: dict[str, Customer],
) -> dict[str, dict[str, Any]]:
    """Snapshots of payment records as read, their allocations resolved the way the write resolves them
    (by the invoice's id at the connection, else by number; one query for the ids of matched invoices),
    their customers named as the canonical customers they resolved to."""

    def customer_of(record: PaymentRecord) -> str | None:
        customer = customers.get(_customer_key(record.customer)) if record.customer else None
        return snapshots.customer_key(customer) if customer is not None else None

    matched = {r.external_id: [(a, _allocation_invoice(a, invoices)) for a in r.allocations] for r in records}
    pks = {invoice.pk for pairs in matched.values() for _, invoice in pairs if invoice is not None}
    bound = (
        dict(
            Binding.objects.filter(
                connection=connection, object_type=ObjectType.INVOICE, object_id__in=pks
            ).values_list("object_id", "external_id")
        )
        if pks
        else {}
    )
    return {
        r.external_id: snapshots.payment_snapshot(
            r,
            [
                (
                    invoice.pk if invoice else None,
                    a.invoice_external_id or (bound.get(invoice.pk, "") if invoice else ""),
                    a.amount,
                )
                for a, invoice in matched[r.external_id]
            ],
            customer=customer_of(r),
        )
        for r in records
    }


def _payments_write(connection: Any, records: Sequence[PaymentRecord], result: WriteResult) -> None:
    new, changed, unchanged, hashes = _split(connection, ObjectType.PAYMENT, records)
    documents = Payment.objects.in_bulk([b.object_id for _, b in [*changed, *unchanged]])
    # An unchanged payment still waiting for its invoice is matched again: the invoice may have arrived.
    waiting = [(r, b) for r, b in unchanged if documents[b.object_id].unapplied_amount > 0]
    blank = [(r, b) for r, b in unchanged if not b.snapshot and (r, b) not in waiting]
    touched: list[PaymentRecord] = [*new, *(r for r, _ in changed), *(r for r, _ in waiting)]  # type: ignore[list-item]
    customers = customers_resolve(r.customer for r in touched if r.customer)
    readable: list[PaymentRecord] = [*touched, *(r for r, _ in blank)]  # type: ignore[list-item]
    invoices = _invoices_for(connection, [a for r in readable for a in r.allocations])
    # built once the invoices they point at are known: a waiting payment's snapshot follows its matches
    read = _payment_snapshots(connection, readable, invoices, customers)

    def customer_of(record: PaymentRecord) -> Customer | None:
        return customers[_customer_key(record.customer)] if record.customer else None

    created = bulk_create_with_history(
        [
            Payment(source_connection=connection, **_payment_values(r, customer_of(r), hashes[r.external_id]))
            for r in new
        ],  # type: ignore[arg-type]
        Payment,
        default_change_reason=IMPORT_REASON,
    )
    _bind(connection, ObjectType.PAYMENT, list(zip(new, created, strict=True)), hashes, read)
    pairs: list[tuple[PaymentRecord, Payment]] = list(zip(new, created, strict=True))  # type: ignore[arg-type]
    for record, binding in changed:
        payment = documents[binding.object_id]
        digest = hashes[record.external_id]
        _set(payment, _payment_values(record, customer_of(record), digest))  # type: ignore[arg-type]
        _rebind(binding, digest, read[record.external_id])
        pairs.append((record, payment))  # type: ignore[arg-type]
        result.updated.append(payment)
    pairs += [(r, documents[b.object_id]) for r, b in waiting]  # type: ignore[misc]
    snapshots.snapshots_write(
        [(b.pk, read[r.external_id]) for r, b in [*waiting, *blank] if b.snapshot != read[r.external_id]]
    )
    for record, payment in pairs:
        wanted = _allocations_wanted(record, invoices, record.transaction_date, result)
        _allocations_replace(payment, PaymentAllocation, "payment", wanted)
        unapplied = record.amount - sum((amount for amount, _ in wanted.values()), ZERO)
        if unapplied != payment.unapplied_amount:
            payment.unapplied_amount = unapplied
            payment.save(update_fields=["unapplied_amount", "updated_at"])
        if unapplied > 0 and not record.allocations:
            result.unallocated_payments.append((record, payment))
    result.created += created
    result.unchanged += [documents[b.object_id] for _, b in unchanged]


# --- customers (pulled as records of their own) ------------------------------------------------------
def _customers_write(connection: Any, records: Sequence[CustomerRecord], result: WriteResult) -> None:
    hashes = {r.external_id: content_hash(r) for r in records}
    bindings = _bindings(connection, ObjectType.CUSTOMER, list(hashes))
    new = [r for r in records if r.external_id not in bindings]
    matched = customers_resolve(new)
    # two records (or a record and an earlier binding) that match one customer bind it once
    taken = set(
        Binding.objects.filter(
            connection=connection,
            object_type=ObjectType.CUSTOMER,
            object_id__in=[c.pk for c in matched.values()],
        ).values_list("object_id", flat=True)
    )
    pairs = []
    for record in new:
        customer = matched[_customer_key(record)]
        if customer.pk not in taken:
            taken.add(customer.pk)
            pairs.append((record, customer))
    _bind(connection, ObjectType.CUSTOMER, pairs, hashes)
    result.created += [customer for _, customer in pairs]
    known = Customer.objects.in_bulk([b.object_id for b in bindings.values()])
    for record in records:
        binding = bindings.get(record.external_id)
        if binding is None:
            continue
        customer = known[binding.object_id]
        if binding.content_hash == hashes[record.external_id]:
            result.unchanged.append(customer)
            continue
        customer.name, customer.email = record.name, record.email or customer.email
        customer.tax_number = record.tax_number or customer.tax_number
        customer.currency = record.currency or customer.currency
        customer._change_reason = UPDATE_REASON  # type: ignore[attr-defined]
        customer.save()
        _rebind(binding, hashes[record.external_id])
        result.updated.append(customer)


_DELETED_STATUS = {
    ObjectType.INVOICE: (Invoice, Invoice.Status.DELETED),
    ObjectType.CREDIT_NOTE: (CreditNote, CreditNote.Status.DELETED),
    ObjectType.PAYMENT: (Payment, Payment.Status.VOID),
}


def _document_snapshot(connection: Any, object_type: str, document: Any) -> dict[str, Any]:
    """A canonical document's snapshot, the invoices of a payment named by their ids on `connection`."""
    if object_type == ObjectType.INVOICE:
        return snapshots.invoice_snapshot(document)
    if object_type == ObjectType.CREDIT_NOTE:
        return snapshots.credit_note_snapshot(document)
    if object_type == ObjectType.PAYMENT:
        allocations = list(document.allocations.all())
        external = dict(
            Binding.objects.filter(
                connection=connection,
                object_type=ObjectType.INVOICE,
                object_id__in=[a.invoice_id for a in allocations],
            ).values_list("object_id", "external_id")
        )
        return snapshots.payment_model_snapshot(document, external)
    return {}


def deletions_record(*, connection: Any, object_type: str, external_ids: Sequence[str]) -> list[Any]:
    """Records deleted at the source: the binding is marked and the document set deleted (payments: void),
    with history and a new row version, so the deletion reaches every destination. The binding's snapshot
    keeps what was known of the copy, with the deleted (void) status. Returns the documents changed."""
    bindings = list(
        Binding.objects.filter(
            connection=connection, object_type=object_type, external_id__in=external_ids, remote_deleted=False
        )
    )
    if not bindings:
        return []
    changed = []
    with transaction.atomic():
        Binding.objects.filter(pk__in=[b.pk for b in bindings]).update(remote_deleted=True)
        if object_type not in _DELETED_STATUS:
            return []
        model, status = _DELETED_STATUS[object_type]
        documents = model.objects.select_related("customer").in_bulk([b.object_id for b in bindings])
        rows = []
        for binding in bindings:
            document = documents.get(binding.object_id)
            known = binding.snapshot
            if not known and document is not None:
                known = _document_snapshot(connection, object_type, document)
            rows.append((binding.pk, snapshots.gone(object_type, known)))
        snapshots.snapshots_write(rows)
        for document in documents.values():
            if document.status == status:
                continue
            document.status = status
            document.row_version += 1
            document._change_reason = "deleted at the source"
            document.save()
            changed.append(document)
    return changed


_WRITERS: dict[type, tuple[str, Callable[..., None]]] = {
    CustomerRecord: (ObjectType.CUSTOMER, _customers_write),
    InvoiceRecord: (ObjectType.INVOICE, _invoices_write),
    CreditNoteRecord: (ObjectType.CREDIT_NOTE, _credit_notes_write),
    PaymentRecord: (ObjectType.PAYMENT, _payments_write),
}


def records_write(*, connection: Any, records: Sequence[Record]) -> WriteResult:
    """Write one page of records of one type from `connection`, atomically."""
    result = WriteResult()
    if not records:
        return result
    kinds = {type(record) for record in records}
    if len(kinds) != 1:
        raise ValueError("records_write takes one type of record per page")
    _, writer = _WRITERS[kinds.pop()]
    with transaction.atomic():
        writer(connection, records, result)
    return result


def object_type_of(record: Record) -> str:
    return _WRITERS[type(record)][0]
