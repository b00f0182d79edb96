"""The destination mirror: what a destination holds now, read into the snapshots of our bindings there.

A push leaves a snapshot of each copy it writes; after that the copy lives its own life: it is paid,
voided or edited by hand in the destination, or a second copy of it appears. `copies_refresh` reads a
destination's changes through its connector, page by page, and for each record bound to a canonical
document (and not that document's origin) writes only the binding's `snapshot` and `snapshot_at`: the
canonical document, the remote version (which guards our updates against overwriting a change made
there) and everything else stay as they are. Records bound to nothing that carry the number of a bound
document as it was written there are duplicates, and are returned in the report for the reconciliation
run to turn into exceptions.

The mirror keeps its own cursor per (connection, object type), stored as a `SyncCursor` keyed
`mirror:<object type>`, so a connection that is also a source keeps its pull cursor untouched. Like the
pull it reads from the cursor minus the overlap window, and resumes at its last committed page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from connectors.base import Change, ConnectorError
from sync import snapshots
from sync.models import Binding, CreditNote, Invoice, ObjectType, Payment, SyncCursor, SyncJob, SyncProfile
from sync.pull import cursor_advance, cursor_begin

CURSOR_PREFIX = "mirror:"
OBJECT_TYPES = (ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT)
MODELS: dict[str, Any] = {
    ObjectType.INVOICE: Invoice,
    ObjectType.CREDIT_NOTE: CreditNote,
    ObjectType.PAYMENT: Payment,
}
DEAD = {"void", "deleted", "failed"}
MAX_PROBLEMS = 50  # problems kept in a report: the count goes on, the list stays small
SPLIT_CHUNK = 100  # payment ids per query looking for a split payment's binding


@dataclass(frozen=True)
class Duplicate:
    """A record in the destination that is bound to nothing but carries a bound document's number."""

    object_type: str
    external_id: str  # the unbound record's id in the destination
    number: str  # its number (a payment: its reference), as it stands there
    object_id: int  # the canonical document it duplicates
    bound_external_id: str  # the copy bound to that document
    snapshot: dict[str, Any]  # the unbound record's values, in snapshot form


@dataclass
class MirrorReport:
    """What one refresh of one destination found.

    - `seen`: records read; `pages`: pages read
    - `refreshed`: bound copies whose snapshot was written (still live there)
    - `deleted`: bound copies found deleted or voided there (snapshot written with that status)
    - `origin`: records that are the origin of their document (the pull keeps those)
    - `unbound`: records bound to nothing and carrying no bound document's number (not ours)
    - `failed`: records the connector could not read; `problems` says why (the first MAX_PROBLEMS)
    - `duplicates`: `Duplicate`s seen in this refresh, i.e. among the records changed since the last
      one (all of them with `full=True`); a live record only: a voided or deleted one owes nothing
    - `object_types`: the types read; `skipped_types`: those asked for that the connector cannot list
    """

    connection_id: int
    object_types: list[str] = field(default_factory=list)
    skipped_types: list[str] = field(default_factory=list)
    seen: int = 0
    pages: int = 0
    refreshed: int = 0
    deleted: int = 0
    origin: int = 0
    unbound: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)

    def problem(self, message: str) -> None:
        self.failed += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)


def cursor_key(object_type: str) -> str:
    return f"{CURSOR_PREFIX}{object_type}"


def copies_refresh(
    connection: Any,
    object_types: Iterable[str] | None = None,
    *,
    job: SyncJob | None = None,
    heartbeat: Callable[[int], None] | None = None,
    full: bool = False,
) -> MirrorReport:
    """Read `connection`'s changes (invoices, credit notes, payments, or `object_types`) into the
    snapshots of the bindings there, page by page, each page in one transaction with the mirror's cursor;
    `heartbeat(records in the page)` after each page. `full` reads everything again from the start (every
    duplicate there is then reported, not only those changed since the last refresh). Returns the report
    (see `MirrorReport`); the canonical documents are never changed."""
    connector = connection.connector()
    report = MirrorReport(connection_id=connection.pk)
    wanted = list(OBJECT_TYPES if object_types is None else object_types)
    for object_type in wanted:
        if object_type in OBJECT_TYPES and connector.supports(object_type, "list_changes"):
            report.object_types.append(object_type)
        else:
            report.skipped_types.append(object_type)
    numbering = _numbering(connection)
    for object_type in report.object_types:
        cursor, _ = SyncCursor.objects.get_or_create(
            connection=connection, object_type=cursor_key(object_type)
        )
        if full and not cursor.run_started:
            cursor.since = None
        cursor_begin(cursor)
        while True:
            page = connector.list_changes(object_type, since=cursor.run_since, page=cursor.run_page or None)
            report.pages += 1
            # read (and fetch) first, outside any transaction: no request is made while rows are locked
            rows = _page_mirror(connection, connector, object_type, page.changes, report, numbering)
            with transaction.atomic():
                snapshots.snapshots_write(rows)
                cursor_advance(cursor, page)
            if heartbeat is not None:
                heartbeat(len(page.changes))
            if not page.next_page:
                break
    return report


def _numbering(connection: Any) -> list[tuple[str, str]]:
    """(prefix, suffix) of every profile pushing to `connection`: how numbers are written there."""
    forms = {
        (profile.mapping_set.number_prefix, profile.mapping_set.number_suffix)
        if profile.mapping_set
        else ("", "")
        for profile in SyncProfile.objects.filter(destination=connection).select_related("mapping_set")
    }
    return sorted(forms)


def _number(object_type: str, record: Any) -> str:
    return str(getattr(record, "reference" if object_type == ObjectType.PAYMENT else "number", "") or "")


def _page_mirror(
    connection: Any,
    connector: Any,
    object_type: str,
    changes: Sequence[Change],
    report: MirrorReport,
    numbering: list[tuple[str, str]],
) -> list[tuple[int, dict[str, Any]]]:
    """The snapshots to write for one page (binding pk, snapshot); duplicates and counts go on `report`."""
    bindings = {
        b.external_id: b
        for b in Binding.objects.filter(
            connection=connection,
            object_type=object_type,
            external_id__in=[c.external_id for c in changes if c.external_id],
        )
    }
    records = [c.record for c in changes if c.record is not None]
    customers = snapshots.customer_keys(connection.pk, records)
    invoice_ids: dict[str, int] = {}
    if object_type == ObjectType.PAYMENT:
        invoice_ids = snapshots.allocation_invoice_ids(connection.pk, records)
    rows: list[tuple[int, dict[str, Any]]] = []
    loose: list[Change] = []
    for change in changes:
        report.seen += 1
        if change.problem is not None:
            problem = change.problem
            where = problem.location or change.external_id
            report.problem(f"{object_type} {problem.key or change.external_id} ({where}): {problem.message}")
            continue
        binding = bindings.get(change.external_id)
        if binding is None:
            loose.append(change)
            continue
        if binding.is_origin:
            report.origin += 1
            continue
        if change.record is None:  # deleted, and the platform says no more (QuickBooks' CDC)
            rows.append((binding.pk, snapshots.gone(object_type, binding.snapshot)))
            report.deleted += 1
            continue
        snapshot = snapshots.record_snapshot(
            object_type, change.record, invoice_ids=invoice_ids, customers=customers
        )
        rows.append((binding.pk, snapshot))
        if change.deleted or snapshot.get("status") in DEAD:
            report.deleted += 1
        else:
            report.refreshed += 1
    if object_type == ObjectType.PAYMENT:
        loose = _split_parts(connection, connector, loose, rows, report, invoice_ids)
    _duplicates(connection, object_type, loose, report, numbering, invoice_ids, customers)
    return rows


def _split_parts(
    connection: Any,
    connector: Any,
    loose: list[Change],
    rows: list[tuple[int, dict[str, Any]]],
    report: MirrorReport,
    invoice_ids: dict[str, int],
) -> list[Change]:
    """A payment recorded against several invoices can be one record per invoice there (Xero), bound
    together as "id1,id2": such a part is read as its whole group. Returns the records still unbound."""
    ids = [c.external_id for c in loose if c.external_id and "," not in c.external_id]
    groups: dict[str, Binding] = {}
    for start in range(0, len(ids), SPLIT_CHUNK):
        match = Q()
        for external_id in ids[start : start + SPLIT_CHUNK]:
            match |= (
                Q(external_id__startswith=f"{external_id},")
                | Q(external_id__endswith=f",{external_id}")
                | Q(external_id__contains=f",{external_id},")
            )
        for binding in Binding.objects.filter(connection=connection, object_type=ObjectType.PAYMENT).filter(
            match
        ):
            for part in binding.external_id.split(","):
                groups[part] = binding
    if not groups:
        return loose
    done: set[int] = set()
    rest = []
    for change in loose:
        binding = groups.get(change.external_id)
        if binding is None:
            rest.append(change)
            continue
        if binding.pk in done:
            continue  # another part of a group read whole already
        done.add(binding.pk)
        if binding.is_origin:
            report.origin += 1
            continue
        try:
            whole = connector.fetch(ObjectType.PAYMENT, binding.external_id)
        except ConnectorError as exc:
            report.problem(f"payment {binding.external_id}: {exc}")
            continue
        if whole.record is None:
            rows.append((binding.pk, snapshots.gone(ObjectType.PAYMENT, binding.snapshot)))
            report.deleted += 1
            continue
        ids_there = {**invoice_ids, **snapshots.allocation_invoice_ids(connection.pk, [whole.record])}
        snapshot = snapshots.record_snapshot(
            ObjectType.PAYMENT,
            whole.record,
            invoice_ids=ids_there,
            customers=snapshots.customer_keys(connection.pk, [whole.record]),
        )
        rows.append((binding.pk, snapshot))
        if snapshot.get("status") in DEAD:
            report.deleted += 1
        else:
            report.refreshed += 1
    return rest


def _duplicates(
    connection: Any,
    object_type: str,
    loose: list[Change],
    report: MirrorReport,
    numbering: list[tuple[str, str]],
    invoice_ids: dict[str, int],
    customers: dict[str, str],
) -> None:
    """Unbound live records carrying the number of a bound document, as it was written there: the
    number its binding holds, or the document's number with a pushing profile's prefix and suffix."""
    live = [
        c
        for c in loose
        if c.record is not None
        and not c.deleted
        and getattr(c.record, "status", "") not in DEAD
        and _number(object_type, c.record)
    ]
    report.unbound += len(loose) - len(live)
    if not live:
        return
    numbers = {_number(object_type, c.record) for c in live}
    bound = Binding.objects.filter(connection=connection, object_type=object_type, is_origin=False)
    owners: dict[str, tuple[int, str]] = {}
    for object_id, external_id, number in bound.filter(external_number__in=numbers).values_list(
        "object_id", "external_id", "external_number"
    ):
        owners.setdefault(number, (object_id, external_id))
    if object_type != ObjectType.PAYMENT:
        written: dict[str, str] = {}  # canonical number -> number as written there
        for number in numbers - owners.keys():
            for prefix, suffix in numbering:
                if (
                    number.startswith(prefix)
                    and number.endswith(suffix)
                    and len(number) > len(prefix) + len(suffix)
                ):
                    written[number[len(prefix) : len(number) - len(suffix)]] = number
        if written:
            documents = dict(
                MODELS[object_type].objects.filter(number__in=written).values_list("pk", "number")
            )
            for object_id, external_id in bound.filter(object_id__in=documents).values_list(
                "object_id", "external_id"
            ):
                owners.setdefault(written[documents[object_id]], (object_id, external_id))
    for change in live:
        number = _number(object_type, change.record)
        owner = owners.get(number)
        if owner is None:
            report.unbound += 1
            continue
        report.duplicates.append(
            Duplicate(
                object_type=object_type,
                external_id=change.external_id,
                number=number,
                object_id=owner[0],
                bound_external_id=owner[1],
                snapshot=snapshots.record_snapshot(
                    object_type, change.record, invoice_ids=invoice_ids, customers=customers
                ),
            )
        )
