"""The reconciliation run: every canonical document against each of its copies, page by page.

`reconcile()` first asks the sync mirror to re-read each destination's copies (binding snapshots), then
pages through canonical invoices, credit notes and payments with a keyset on id. Per page it loads the
documents' bindings (one query), their allocations (payments) and builds `rules.Document` / `rules.Copy`
values; the pure rules in reconciliation/rules.py judge them, and `services.findings_record` writes the
page's findings in one transaction. Memory is bounded by the page size, whatever the number of documents.

Scope: with a profile, documents from its source and their copies on its destination; without one, every
document that has a copy (or should have one, by an enabled profile) on any connection other than its
origin; with `document`, that one document.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, F
from django.utils import timezone

from connectors.models import Connection
from reconciliation import rules
from reconciliation.services import PageOutcome, findings_record
from sync import snapshots
from sync.models import (
    Binding,
    CreditNote,
    Invoice,
    ObjectType,
    Payment,
    PaymentAllocation,
    SyncJob,
    SyncProfile,
)

log = logging.getLogger(__name__)

MODELS: dict[str, Any] = {
    ObjectType.INVOICE: Invoice,
    ObjectType.CREDIT_NOTE: CreditNote,
    ObjectType.PAYMENT: Payment,
}
DATE_FIELD = {
    ObjectType.INVOICE: "issue_date",
    ObjectType.CREDIT_NOTE: "issue_date",
    "payment": "transaction_date",
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
    ObjectType.PAYMENT: (*_COMMON, "reference", "amount", "transaction_date"),
}
# stored with 4 places for every currency: compared and shown at the currency's minor unit, as copies are
MONEY_FIELDS = {"total", "tax_total", "amount_paid", "amount_due", "remaining_credit", "amount"}
_SNAPSHOT_KEYS = {
    object_type: [name for name in names if name not in _COMMON or name in ("currency", "status")]
    for object_type, names in FIELDS.items()
}
_DAYS = {"issue_date", "due_date", "transaction_date"}
# per object type: (money, date, other) names, turned into the snapshot form (sync/snapshots.py) so a copy
# holding the same values compares equal as strings
_FORMS = {
    object_type: (
        [n for n in names if n in MONEY_FIELDS],
        [n for n in names if n in _DAYS],
        [n for n in names if n not in MONEY_FIELDS and n not in _DAYS],
    )
    for object_type, names in _SNAPSHOT_KEYS.items()
}


@dataclass
class ReconcileReport:
    checked: int = 0
    found: int = 0
    opened: int = 0
    updated: int = 0
    reopened: int = 0
    resolved: int = 0
    accepted: int = 0
    failed: int = 0
    messages: list[str] = field(default_factory=list)

    # the names a SyncJob counts in
    @property
    def seen(self) -> int:
        return self.checked

    @property
    def created(self) -> int:
        return self.opened

    @property
    def skipped(self) -> int:
        return 0

    def add(self, outcome: PageOutcome) -> None:
        for name in ("opened", "updated", "reopened", "resolved", "accepted"):
            setattr(self, name, getattr(self, name) + getattr(outcome, name))

    def note(self, message: str) -> None:
        if len(self.messages) < 50:
            self.messages.append(message)

    def as_dict(self) -> dict[str, int]:
        names = ("checked", "found", "opened", "updated", "reopened", "resolved", "accepted", "failed")
        return {name: getattr(self, name) for name in names}


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


# --- scope --------------------------------------------------------------------------------------------
@dataclass
class Scope:
    profile: SyncProfile | None
    object_types: list[str]
    document: tuple[str, int] | None
    # enabled profiles by source connection: where each document is expected to have a copy
    expecting: dict[int, list[SyncProfile]]
    names: dict[int, str]
    missing_before: Any  # documents created after this are not expected anywhere yet

    def connections(self) -> list[int] | None:
        """Connections whose exceptions this run may judge (None: any)."""
        if self.profile is None:
            return None
        return [self.profile.source_id, self.profile.destination_id]


def _scope(
    profile: SyncProfile | None, object_types: list[str] | None, document: tuple[str, int] | None
) -> Scope:
    wanted = list(object_types or MODELS)
    unknown = [t for t in wanted if t not in MODELS]
    if unknown:
        raise ValueError(f"object_types: {unknown} cannot be reconciled; use {sorted(MODELS)}")
    if profile is not None:
        wanted = [t for t in wanted if t in (profile.object_types or [])]
        profiles = [profile]
    else:
        profiles = list(SyncProfile.objects.filter(enabled=True))
    if document is not None:
        object_type, object_id = document
        if object_type not in MODELS:
            raise ValueError(f"document: {object_type!r} cannot be reconciled; use {sorted(MODELS)}")
        if not MODELS[object_type].objects.filter(pk=object_id).exists():
            raise ValueError(f"document: no {object_type} with id {object_id}")
        wanted = [object_type] if object_type in wanted else []
    expecting: dict[int, list[SyncProfile]] = defaultdict(list)
    for item in profiles:
        expecting[item.source_id].append(item)
    grace = int(getattr(settings, "RECONCILIATION_MISSING_AFTER_MINUTES", 60))
    return Scope(
        profile=profile,
        object_types=wanted,
        document=document,
        expecting=dict(expecting),
        names=dict(Connection.objects.values_list("pk", "name")),
        missing_before=timezone.now() - timedelta(minutes=grace),
    )


def _documents(scope: Scope, object_type: str) -> Any:
    queryset = MODELS[object_type].objects.all()
    if scope.profile is not None:
        queryset = queryset.filter(source_connection_id=scope.profile.source_id)
    if scope.document is not None:
        queryset = queryset.filter(pk=scope.document[1])
    return queryset


def _pages(queryset: Any, object_type: str, size: int) -> Iterator[list[dict[str, Any]]]:
    """Keyset pages of plain rows: never a list of every row."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk").values(*FIELDS[object_type])[:size])
        if not page:
            return
        yield page
        last = page[-1]["id"]


def _source_duplicates(scope: Scope, object_type: str) -> dict[tuple[int, str], list[int]] | None:
    """(source connection, number) -> ids, for numbers that came more than once from one source (one
    grouped query for the whole run; the result holds only the duplicates). None: not checked."""
    if object_type == ObjectType.PAYMENT:
        return None
    queryset = _documents(scope, object_type).exclude(number="").exclude(source_connection=None)
    if scope.document is not None:
        number = MODELS[object_type].objects.filter(pk=scope.document[1]).values_list("number", flat=True)
        queryset = MODELS[object_type].objects.filter(number__in=number).exclude(source_connection=None)
    twice = (
        queryset.values("source_connection_id", "number").annotate(n=Count("id")).filter(n__gt=1).order_by()
    )
    result: dict[tuple[int, str], list[int]] = {}
    for row in twice:
        ids = MODELS[object_type].objects.filter(
            source_connection_id=row["source_connection_id"], number=row["number"]
        )
        result[(row["source_connection_id"], row["number"])] = sorted(ids.values_list("pk", flat=True))
    return result


# --- building the rules' values -----------------------------------------------------------------------
def _customer(row: Mapping[str, Any]) -> str | None:
    email = (row.get("customer__email") or "").strip()
    return email.lower() if email else (row.get("customer__name") or None)


def _document(
    object_type: str, row: Mapping[str, Any], allocations: list[dict[str, Any]], scope: Scope
) -> rules.Document:
    currency = row["currency"]
    money_names, day_names, plain_names = _FORMS[object_type]
    values = {name: row[name] for name in plain_names}
    for name in money_names:
        values[name] = snapshots.money(row[name], currency)
    for name in day_names:
        values[name] = row[name].isoformat() if row[name] is not None else None
    rate = values.get("exchange_rate")
    if rate is not None:
        values["exchange_rate"] = format(rate.normalize(), "f")
    values["customer"] = _customer(row)
    if object_type == ObjectType.PAYMENT:
        for item in allocations:
            item["amount"] = snapshots.money(item["amount"], currency)
        values["allocations"] = allocations
        expected = row["status"] == Payment.Status.COMPLETED
    else:
        expected = row["status"] not in rules.GONE
    source = row["source_connection_id"]
    return rules.Document(
        object_type=object_type,
        object_id=row["id"],
        values=values,
        source_connection_id=source,
        source_name=scope.names.get(source, "") if source else "",
        expected=expected and row["created_at"] <= scope.missing_before,
    )


def _copies(
    object_type: str, row: Mapping[str, Any], bindings: list[tuple[Any, ...]], scope: Scope
) -> list[rules.Copy]:
    """The document's copies on connections other than its origin, bound or expected by a profile."""
    source = row["source_connection_id"]
    when = row[DATE_FIELD[object_type]]
    expected_on: dict[int, bool] = {}
    for profile in scope.expecting.get(source, ()) if source else ():
        if object_type in (profile.object_types or []) and profile.destination_id != source:
            ok = profile.cutover_date is None or when >= profile.cutover_date
            expected_on[profile.destination_id] = expected_on.get(profile.destination_id, False) or ok
    copies, seen = [], set()
    for connection_id, external_id, snapshot, deleted, is_origin in bindings:
        if is_origin or connection_id == source:
            continue
        if scope.profile is not None and connection_id != scope.profile.destination_id:
            continue
        seen.add(connection_id)
        copies.append(
            rules.Copy(
                connection_id=connection_id,
                connection_name=scope.names.get(connection_id, f"connection {connection_id}"),
                values=snapshot or {},
                external_id=external_id,
                deleted=deleted,
                expected=expected_on.get(connection_id, True),
            )
        )
    for connection_id, ok in expected_on.items():
        if connection_id not in seen:
            copies.append(
                rules.Copy(
                    connection_id=connection_id,
                    connection_name=scope.names.get(connection_id, f"connection {connection_id}"),
                    bound=False,
                    expected=ok,
                )
            )
    return copies


def _bindings(object_type: str, ids: list[int], scope: Scope) -> dict[int, list[tuple[Any, ...]]]:
    queryset = Binding.objects.filter(object_type=object_type, is_origin=False)
    if scope.profile is not None:
        queryset = queryset.filter(object_id__in=ids, connection_id=scope.profile.destination_id)
    else:
        # every document in the id range is in the page: a range reads the same rows as a long IN list
        queryset = queryset.filter(object_id__gte=ids[0], object_id__lte=ids[-1])
    result: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for object_id, *rest in queryset.values_list(
        "object_id", "connection_id", "external_id", "snapshot", "remote_deleted", "is_origin"
    ):
        result[object_id].append(tuple(rest))
    return result


def _allocations(object_type: str, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    result: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if object_type != ObjectType.PAYMENT:
        return result
    rows = PaymentAllocation.objects.filter(payment_id__in=ids).values_list(
        "payment_id", "invoice_id", "amount", "invoice__status"
    )
    for payment_id, invoice_id, amount, status in rows:
        result[payment_id].append({"invoice_id": invoice_id, "amount": amount, "invoice_status": status})
    return result


# --- destinations re-read by the mirror ---------------------------------------------------------------
def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _duplicate_record(item: Any) -> dict[str, Any]:
    """A mirror's `Duplicate` as the rules read it: ids, number, and its amount from its snapshot."""
    snapshot = _field(item, "snapshot") or {}
    record = {
        "external_id": _field(item, "external_id"),
        "number": _field(item, "number"),
        "bound_external_id": _field(item, "bound_external_id"),
        "total": snapshot.get("total") if isinstance(snapshot, Mapping) else None,
        "amount": snapshot.get("amount") if isinstance(snapshot, Mapping) else None,
    }
    return {name: value for name, value in record.items() if value not in (None, "")}


def _mirror(
    scope: Scope,
    job: SyncJob | None,
    heartbeat: Callable[[int], None] | None,
    report: ReconcileReport,
    full: bool,
) -> tuple[set[int], dict[tuple[int, str, int], list[dict[str, Any]]]]:
    """Ask the sync mirror to re-read each destination in scope (sync/mirror.py). Returns the connections
    read in full (`full`), and the records found there duplicating a bound document."""
    try:
        from sync.mirror import copies_refresh
    except ImportError:
        report.note(
            "Copies were not re-read from the destinations (sync.mirror.copies_refresh is not available): "
            "compared with the copies as last pulled or pushed."
        )
        return set(), {}
    from sync.jobs import JobCancelled

    if scope.profile is not None:
        destinations = [scope.profile.destination_id]
    else:
        bound = Binding.objects.filter(is_origin=False, object_type__in=scope.object_types)
        if scope.document is not None:
            bound = bound.filter(object_type=scope.document[0], object_id=scope.document[1])
        destinations = sorted(
            set(bound.values_list("connection_id", flat=True).distinct())
            | {p.destination_id for profiles in scope.expecting.values() for p in profiles}
        )
    # the mirror's pages renew the job's lease; progress counts documents checked, not records read
    beat = (lambda _count: heartbeat(0)) if heartbeat is not None else None
    read_in_full: set[int] = set()
    duplicates: dict[tuple[int, str, int], list[dict[str, Any]]] = defaultdict(list)
    for connection in Connection.objects.filter(pk__in=destinations).order_by("pk"):
        try:
            result = copies_refresh(connection, scope.object_types, job=job, heartbeat=beat, full=full)
        except JobCancelled:
            raise
        except Exception as exc:  # one destination that cannot be read leaves the others to compare
            log.warning("copies of %s not re-read: %r", connection, exc)
            report.note(
                f"{connection.name}: copies not re-read ({type(exc).__name__}: {exc}); compared with the "
                "copies as last known."
            )
            continue
        if full and not (_field(result, "skipped_types") or []) and not _field(result, "failed"):
            read_in_full.add(connection.pk)
        for item in _field(result, "duplicates") or ():
            object_type, object_id = _field(item, "object_type"), _field(item, "object_id")
            if object_type is not None and object_id is not None:
                duplicates[(connection.pk, str(object_type), int(object_id))].append(_duplicate_record(item))
    return read_in_full, dict(duplicates)


# --- the run ------------------------------------------------------------------------------------------
def reconcile(
    *,
    profile: SyncProfile | None = None,
    job: SyncJob | None = None,
    heartbeat: Callable[[int], None] | None = None,
    object_types: list[str] | None = None,
    document: tuple[str, int] | None = None,
    refresh: bool = True,
    full: bool = False,
) -> ReconcileReport:
    """Check the scope and write its findings; see the module docstring. `refresh=False` compares the
    copies as last known, without asking the mirror to re-read the destinations; `full` has the mirror
    read every record again (not only those changed since its last read), which is what lets a duplicate
    in a destination that has gone be resolved."""
    scope = _scope(profile, object_types, document)
    report = ReconcileReport()
    tol = tolerances()
    size = page_size()
    if job is not None:
        total = sum(_documents(scope, t).count() for t in scope.object_types)
        SyncJob.objects.filter(pk=job.pk).update(progress_total=F("progress_done") + total)
    read_in_full, duplicates = _mirror(scope, job, heartbeat, report, full) if refresh else (set(), {})
    for object_type in scope.object_types:
        twins = _source_duplicates(scope, object_type)
        for page in _pages(_documents(scope, object_type), object_type, size):
            outcome = _page(object_type, page, scope, tol, twins, read_in_full, duplicates, job, report)
            if job is not None:
                SyncJob.objects.filter(pk=job.pk).update(
                    seen=F("seen") + outcome.checked,
                    created=F("created") + outcome.opened,
                    updated=F("updated") + outcome.updated,
                    failed=F("failed") + outcome.failed,
                )
            if heartbeat is not None:
                heartbeat(len(page))
    return report


def _page(
    object_type: str,
    page: list[dict[str, Any]],
    scope: Scope,
    tol: rules.Tolerances,
    twins: dict[tuple[int, str], list[int]] | None,
    read_in_full: set[int],
    duplicates: dict[tuple[int, str, int], list[dict[str, Any]]],
    job: SyncJob | None,
    report: ReconcileReport,
) -> PageOutcome:
    ids = [row["id"] for row in page]
    bindings = _bindings(object_type, ids, scope)
    allocations = _allocations(object_type, ids)
    findings: list[rules.Finding] = []
    judged: dict[tuple[int, int | None], set[str]] = {}
    failed = checked_count = 0
    for row in page:
        try:
            copies = _copies(object_type, row, bindings.get(row["id"], []), scope)
            if not copies and scope.document is None:
                continue  # never sent anywhere, and no profile sends it: nothing to compare
            doc = _document(object_type, row, allocations.get(row["id"], []), scope)
            key = (row["source_connection_id"], doc.number)
            earlier = [pk for pk in (twins or {}).get(key, ()) if pk < row["id"]]
            checked = rules.document_check(
                doc,
                copies,
                tol,
                earlier=earlier,
                source_duplicates_checked=twins is not None,
                destination_duplicates={
                    c.connection_id: duplicates.get((c.connection_id, object_type, row["id"]), ())
                    for c in copies
                },
                duplicates_read_in_full=read_in_full,
            )
        except Exception as exc:  # one document that cannot be checked never stops the page
            log.exception("%s %s could not be checked", object_type, row.get("id"))
            report.note(f"{object_type} {row.get('id')}: not checked ({type(exc).__name__}: {exc})")
            failed += 1
            continue
        checked_count += 1
        findings.extend(checked.findings)
        for connection_id, names in checked.judged.items():
            judged[(row["id"], connection_id)] = names
    outcome = findings_record(
        object_type,
        findings,
        judged=judged,
        job=job,
        connections=scope.connections(),
    )
    outcome.checked, outcome.failed = checked_count, failed
    report.checked += checked_count
    report.failed += failed
    report.found += len(findings)
    report.add(outcome)
    return outcome


def reconcile_job(job: SyncJob, heartbeat: Callable[[int], None]) -> ReconcileReport:
    """The handler of "reconcile" jobs: the job's profile (or everything); params may name
    "object_types" and a "document" ([object type, id]) to check alone."""
    params = job.params or {}
    document = params.get("document")
    return reconcile(
        profile=job.profile,
        job=job,
        heartbeat=heartbeat,
        object_types=params.get("object_types") or None,
        document=(str(document[0]), int(document[1])) if document else None,
        full=bool(params.get("full")),
    )
