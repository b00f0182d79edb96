"""The run: re-read the destinations, then every page of documents (and of posted daily summaries)
through the rules, and each page's findings written in one transaction."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F

from connectors.models import Connection
from reconciliation import rules
from reconciliation.checks.scope import (
    SUMMARY_TYPES,
    Scope,
    documents,
    page_size,
    pages,
    scope_build,
    source_duplicates,
    tolerances,
)
from reconciliation.checks.summaries import summary_check, summary_pages
from reconciliation.checks.values import (
    allocations_load,
    bindings_load,
    copies_build,
    document_build,
    holds_attach,
    members_load,
)
from reconciliation.services import PageOutcome, findings_record
from sync.models import Binding, SummaryPosting, SyncJob, SyncProfile

log = logging.getLogger(__name__)


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
    """Check the scope and write its findings; see the package docstring. `refresh=False` compares the
    copies as last known, without asking the mirror to re-read the destinations; `full` has the mirror
    read every record again (not only those changed since its last read), which is what lets a duplicate
    in a destination that has gone be resolved."""
    scope = scope_build(profile, object_types, document)
    report = ReconcileReport()
    tol = tolerances()
    size = page_size()
    if job is not None:
        total = sum(documents(scope, t).count() for t in scope.object_types)
        profiles = {p.pk for kind in scope.summary_kinds for p in scope.summary_profiles(SUMMARY_TYPES[kind])}
        if profiles:
            posted = SummaryPosting.objects.filter(kind__in=scope.summary_kinds, profile_id__in=profiles)
            total += posted.count()
        SyncJob.objects.filter(pk=job.pk).update(progress_total=F("progress_done") + total)
    read_in_full, duplicates = _mirror(scope, job, heartbeat, report, full) if refresh else (set(), {})
    for object_type in scope.object_types:
        twins = source_duplicates(scope, object_type)
        for page in pages(documents(scope, object_type), scope.fields(object_type), size):
            outcome = _page(object_type, page, scope, tol, twins, read_in_full, duplicates, job, report)
            _progress(job, heartbeat, outcome, len(page))
    for kind in scope.summary_kinds:
        for page in summary_pages(scope, kind, size):
            outcome = _summary_page(kind, page, scope, tol, job, report)
            _progress(job, heartbeat, outcome, len(page))
    return report


def _progress(
    job: SyncJob | None, heartbeat: Callable[[int], None] | None, outcome: PageOutcome, count: int
) -> None:
    if job is not None:
        SyncJob.objects.filter(pk=job.pk).update(
            seen=F("seen") + outcome.checked,
            created=F("created") + outcome.opened,
            updated=F("updated") + outcome.updated,
            failed=F("failed") + outcome.failed,
        )
    if heartbeat is not None:
        heartbeat(count)


def _page(
    object_type: str,
    page: list[dict[str, Any]],
    scope: Scope,
    tol: rules.Tolerances,
    twins: dict[tuple[int, str], list[int]],
    read_in_full: set[int],
    duplicates: dict[tuple[int, str, int], list[dict[str, Any]]],
    job: SyncJob | None,
    report: ReconcileReport,
) -> PageOutcome:
    ids = [row["id"] for row in page]
    bindings = bindings_load(object_type, ids, scope)
    allocations = allocations_load(object_type, ids)
    members = members_load(object_type, ids, scope)
    key_name = rules.SOURCE_KEY[object_type]
    findings: list[rules.Finding] = []
    judged: dict[tuple[int, int | None], set[str]] = {}
    failed = checked_count = 0
    built: list[tuple[rules.Document, list[rules.Copy]]] = []
    for row in page:
        try:
            copies = copies_build(object_type, row, bindings.get(row["id"], []), members, scope)
            if not copies and scope.document is None:
                continue  # never sent anywhere, and no profile sends it: nothing to compare
            built.append((document_build(object_type, row, allocations.get(row["id"], []), scope), copies))
        except Exception as exc:  # one document that cannot be read never stops the page
            _failed(object_type, row.get("id"), exc, report)
            failed += 1
    holds_attach(object_type, built)
    for doc, copies in built:
        try:
            key = (doc.source_connection_id, rules.text(doc.values.get(key_name)))
            checked = rules.document_check(
                doc,
                copies,
                tol,
                earlier=[pk for pk in twins.get(key, ()) if pk < doc.object_id],  # type: ignore[arg-type]
                destination_duplicates={
                    c.connection_id: duplicates.get((c.connection_id, object_type, doc.object_id), ())
                    for c in copies
                },
                duplicates_read_in_full=read_in_full,
            )
        except Exception as exc:  # one document that cannot be checked never stops the page
            _failed(object_type, doc.object_id, exc, report)
            failed += 1
            continue
        checked_count += 1
        findings.extend(checked.findings)
        for connection_id, names in checked.judged.items():
            judged[(doc.object_id, connection_id)] = names
    return _written(object_type, findings, judged, scope, job, report, checked_count, failed)


def _summary_page(
    kind: str,
    page: list[dict[str, Any]],
    scope: Scope,
    tol: rules.Tolerances,
    job: SyncJob | None,
    report: ReconcileReport,
) -> PageOutcome:
    findings: list[rules.Finding] = []
    judged: dict[tuple[int, int | None], set[str]] = {}
    failed = checked_count = 0
    for row in page:
        try:
            result = summary_check(kind, row, scope, tol)
        except Exception as exc:  # one summary that cannot be checked never stops the page
            _failed(kind, row.get("id"), exc, report)
            failed += 1
            continue
        if result is None:
            continue
        finding, connection_id = result
        checked_count += 1
        judged[(row["id"], connection_id)] = {"summary_total"}
        if finding is not None:
            findings.append(finding)
    return _written(kind, findings, judged, scope, job, report, checked_count, failed)


def _failed(object_type: str, object_id: Any, exc: Exception, report: ReconcileReport) -> None:
    log.exception("%s %s could not be checked", object_type, object_id)
    report.note(f"{object_type} {object_id}: not checked ({type(exc).__name__}: {exc})")


def _written(
    object_type: str,
    findings: list[rules.Finding],
    judged: dict[tuple[int, int | None], set[str]],
    scope: Scope,
    job: SyncJob | None,
    report: ReconcileReport,
    checked_count: int,
    failed: int,
) -> PageOutcome:
    outcome = findings_record(object_type, findings, judged=judged, job=job, connections=scope.connections())
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
