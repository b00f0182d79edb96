"""Importing a file from a file-based connection: parse, write page by page, record every problem.

The file is read whole before anything is written, so a file that cannot be processed writes nothing. Each
page of documents is written in one transaction; a page that fails is retried one document at a time so a
single bad document cannot sink the others. Every rejected document becomes a reconciliation exception
naming its row, column and raw value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from connectors.base import InvoiceRecord, PaymentRecord, RecordProblem, record_to_dict
from reconciliation.models import ReconciliationException
from reconciliation.services import exception_fingerprint, exception_record, exceptions_resolve_by_system
from sync.models import SyncAttempt, SyncJob
from sync.services import Record, WriteResult, object_type_of, records_write

log = logging.getLogger(__name__)
Kind = ReconciliationException.Kind
Severity = ReconciliationException.Severity
PAGE_SIZE = 500
OBJECT_TYPES = {"invoices": "invoice", "payments": "payment", "credit_notes": "credit_note"}


@dataclass
class ImportReport:
    job: SyncJob
    kind: str
    rows: int = 0
    imported_rows: int = 0
    rejected_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_documents: int = 0
    exceptions_opened: int = 0


def _rows_of(record: Record) -> int:
    return len(record.raw) if isinstance(record.raw, list) else 1


def file_import(
    *,
    connection: Any,
    data: bytes,
    filename: str = "",
    kind: str | None = None,
    encoding: str = "utf-8",
    options: dict[str, Any] | None = None,
    actor: Any = None,
    trigger: str = SyncJob.Trigger.COMMAND,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import one file into canonical documents. Raises the connector's file error before writing anything."""
    parsed = connection.connector().parse_file(data, kind=kind, encoding=encoding, **(options or {}))
    if connection.pk is None:
        connection.save()  # a new connection only once its first file proved readable
    now = timezone.now()
    job = SyncJob.objects.create(
        kind=SyncJob.Kind.IMPORT,
        trigger=trigger,
        state=SyncJob.State.RUNNING,
        connection=connection,
        created_by=actor if getattr(actor, "pk", None) else None,
        params={"file": filename, "kind": parsed.kind, "options": parsed.options.__dict__},
        attempts=1,
        started_at=now,
        progress_total=len(parsed.items),
        seen=len(parsed.items),
    )
    attempt = SyncAttempt.objects.create(job=job, number=1)
    report = ImportReport(job=job, kind=parsed.kind, rows=parsed.row_count)
    object_type = OBJECT_TYPES[parsed.kind]
    records = [item for item in parsed.items if not isinstance(item, RecordProblem)]
    problems = [item for item in parsed.items if isinstance(item, RecordProblem)]

    try:
        for problem in problems:
            problem_record(connection, job, object_type, problem, filename)
        report.rejected_documents = len(problems)
        report.rejected_rows = sum(len(problem.rows) or 1 for problem in problems)
        done = len(problems)
        if progress:
            progress(done, len(parsed.items))

        for start in range(0, len(records), PAGE_SIZE):
            page = records[start : start + PAGE_SIZE]
            written, failed = page_write(connection, job, page)
            for record in failed:
                report.rejected_documents += 1
                report.rejected_rows += _rows_of(record)
            failed_ids = {id(record) for record in failed}
            ok = [record for record in page if id(record) not in failed_ids]
            report.imported_rows += sum(_rows_of(record) for record in ok)
            report.created += len(written.created)
            report.updated += len(written.updated)
            report.unchanged += len(written.unchanged)
            after_write(connection, job, object_type, ok, written)
            done += len(page)
            SyncJob.objects.filter(pk=job.pk).update(progress_done=done)
            if progress:
                progress(done, len(parsed.items))

    except BaseException as exc:
        # Pages already written stay written (each was its own transaction); the job says where it stopped.
        _job_failed(job, attempt, exc, report)
        raise
    report.exceptions_opened = ReconciliationException.objects.filter(job=job).count()
    job.created, job.updated, job.skipped = report.created, report.updated, report.unchanged
    job.failed = report.rejected_documents
    job.progress_done = len(parsed.items)
    job.state = SyncJob.State.PARTIAL if report.rejected_documents else SyncJob.State.SUCCEEDED
    job.finished_at = timezone.now()
    job.save()
    attempt.outcome = SyncAttempt.Outcome.SUCCEEDED
    attempt.finished_at = job.finished_at
    attempt.log = [
        {"message": f"imported {report.imported_rows}, rejected {report.rejected_rows}", "rows": report.rows}
    ]
    attempt.save()
    return report


def _job_failed(job: SyncJob, attempt: SyncAttempt, exc: BaseException, report: ImportReport) -> None:
    now = timezone.now()
    job.created, job.updated, job.skipped = report.created, report.updated, report.unchanged
    job.failed = report.rejected_documents
    job.state = SyncJob.State.FAILED
    job.error = f"{type(exc).__name__}: {exc}"[:2000]
    job.finished_at = now
    job.save()
    attempt.outcome = SyncAttempt.Outcome.FAILED
    attempt.error = job.error
    attempt.finished_at = now
    attempt.save()


def page_write(connection: Any, job: SyncJob, page: list[Record]) -> tuple[WriteResult, list[Record]]:
    """Write a page at once; if that fails, one by one, turning each failure into an exception."""
    try:
        return records_write(connection=connection, records=page), []
    except DatabaseError:
        log.warning("page of %d documents failed; retrying one at a time", len(page), exc_info=True)
    merged, failed = WriteResult(), []
    for record in page:
        try:
            single = records_write(connection=connection, records=[record])
        except DatabaseError as exc:
            failed.append(record)
            failure_record(connection, job, record, exc)
            continue
        merged.merge(single)
    return merged, failed


def problem_record(
    connection: Any, job: SyncJob, object_type: str, problem: RecordProblem, filename: str
) -> None:
    identity = problem.key or problem.location
    label = object_type.replace("_", " ")
    exception_record(
        kind=Kind.INVALID_INPUT,
        fingerprint=exception_fingerprint(Kind.INVALID_INPUT, connection.pk, object_type, identity),
        title=f"{label.capitalize()} {problem.key or '(no number)'} rejected: {problem.location}",
        message=problem.message,
        severity=Severity.HIGH,
        connection=connection,
        job=job,
        object_type=object_type,
        document_number=problem.key,
        details={
            "file": filename,
            "location": problem.location,
            "column": problem.field,
            "raw_value": problem.raw,
            "rows": list(problem.rows),
            "message": problem.message,
        },
    )


def failure_record(connection: Any, job: SyncJob, record: Record, exc: Exception) -> None:
    object_type = object_type_of(record)
    exception_record(
        kind=Kind.SYNC_FAILURE,
        fingerprint=exception_fingerprint(Kind.SYNC_FAILURE, connection.pk, object_type, record.external_id),
        title=f"{object_type.replace('_', ' ').capitalize()} {record.external_id} could not be written",
        message=str(exc)[:2000],
        severity=Severity.HIGH,
        connection=connection,
        job=job,
        object_type=object_type,
        document_number=record.external_id,
        details={"record": record_to_dict(record)},
    )


def after_write(
    connection: Any, job: SyncJob, object_type: str, ok: list[Record], written: WriteResult
) -> None:
    """Flag what the documents say is wrong, and resolve what a clean import shows is fixed."""
    # exceptions name a document by its number (reference for payments) or, when it has none yet, by its
    # id at the source: the two differ on every platform but CSV
    keys = list({*(record.external_id for record in ok), *(_number(record) for record in ok)} - {""})
    still_unmatched = {
        getattr(r, "number", "") or getattr(r, "reference", "") for r, _ in written.unmatched_allocations
    }
    still_unmatched |= {record.reference for record, _ in written.unallocated_payments}
    stale = ReconciliationException.objects.filter(
        connection=connection,
        object_type=object_type,
        document_number__in=keys,
        state__in=ReconciliationException.OPEN_STATES,
    ).filter(
        Q(kind__in=[Kind.INVALID_INPUT, Kind.SYNC_FAILURE])
        | (Q(kind=Kind.UNMATCHED_PAYMENT) & ~Q(document_number__in=still_unmatched))
    )
    exceptions_resolve_by_system(stale, reason="imported cleanly")

    documents = {doc.number if hasattr(doc, "number") else doc.reference: doc for doc in written.documents}
    mismatch_clean = []
    for record in ok:
        document = documents.get(_number(record))
        if document is None:
            continue
        fingerprint = exception_fingerprint(Kind.TOTAL_MISMATCH, object_type, document.pk)
        lines_total = getattr(record, "lines_total", None)
        if isinstance(record, InvoiceRecord) and lines_total != record.total:
            difference = abs(record.total - lines_total)
            exception_record(
                kind=Kind.TOTAL_MISMATCH,
                fingerprint=fingerprint,
                title=f"Invoice {record.number}: stated total {record.total} {record.currency} "
                f"differs from its lines ({lines_total})",
                message="The stated total is kept. Check the source document before it is pushed.",
                severity=Severity.MEDIUM,
                connection=connection,
                job=job,
                object_type=object_type,
                object_id=document.pk,
                document_number=record.number,
                currency=record.currency,
                amount_at_risk=difference,
                details={"stated_total": str(record.total), "lines_total": str(lines_total)},
            )
        else:
            mismatch_clean.append(fingerprint)
    if mismatch_clean:
        exceptions_resolve_by_system(
            ReconciliationException.objects.filter(fingerprint__in=mismatch_clean),
            reason="total agrees with lines",
        )

    for record, invoice_number in written.unmatched_allocations:
        _unmatched(connection, job, record, invoice_number)
    for record, payment in written.unallocated_payments:
        _unmatched(connection, job, record, "", document=payment)


def _number(record: Record) -> str:
    return getattr(record, "number", "") or getattr(record, "reference", "")


def _unmatched(
    connection: Any, job: SyncJob, record: Record, invoice_number: str, document: Any = None
) -> None:
    object_type = object_type_of(record)
    number = getattr(record, "number", "") or getattr(record, "reference", "")
    amount = record.amount if isinstance(record, PaymentRecord) else getattr(record, "total", Decimal(0))
    if invoice_number:
        label = object_type.replace("_", " ").capitalize()
        title = f"{label} {number} names invoice {invoice_number}, which is not known"
    else:
        title = f"Payment {number} matches no invoice"
    exception_record(
        kind=Kind.UNMATCHED_PAYMENT,
        fingerprint=exception_fingerprint(
            Kind.UNMATCHED_PAYMENT, connection.pk, object_type, number, invoice_number
        ),
        title=title,
        message="Import or map the invoice, or propose an override to apply it elsewhere.",
        severity=Severity.HIGH,
        connection=connection,
        job=job,
        object_type=object_type,
        object_id=document.pk if document is not None else None,
        document_number=number,
        currency=record.currency,
        amount_at_risk=amount,
        details={"invoice_number": invoice_number},
    )
