"""Pull: a connection's changes into canonical documents, incrementally and resumably.

The cursor per (connection, object type) stores the newest change time of the last complete pull. The
next pull reads from that time minus the overlap window (`SYNC_PULL_OVERLAP_SECONDS`), inclusive, so a
record written while the last pull ran, or stamped a little out of order, is read again rather than lost;
reading it twice costs nothing because records are deduplicated by binding and content hash. Each page is
written in one transaction together with the cursor's page token, so a pull cut off by a crash resumes at
its last committed page. Deleted and voided records are recorded (binding marked, document set deleted or
void with history) so the deletion reaches every destination.

A backfill reads a date range from the start, keeps its own page token in the job (not the cursor), and
never double-books: what an earlier run wrote is found by its binding and skipped or updated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connectors.base import Change, ChangePage
from sync.imports import after_write, page_write, problem_record
from sync.models import ObjectType, SyncCursor, SyncJob
from sync.services import deletions_record

log = logging.getLogger(__name__)
DATE_ATTRS = ("issue_date", "transaction_date")


@dataclass
class PullReport:
    seen: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    pages: int = 0


def overlap() -> timedelta:
    return timedelta(seconds=getattr(settings, "SYNC_PULL_OVERLAP_SECONDS", 300))


def _in_range(change: Change, date_range: tuple[date, date] | None) -> bool:
    if date_range is None or change.record is None:
        return True
    for attr in DATE_ATTRS:
        value = getattr(change.record, attr, None)
        if value is not None:
            return date_range[0] <= value <= date_range[1]
    return True


def changes_write(
    connection: Any,
    job: SyncJob | None,
    object_type: str,
    changes: Iterable[Change],
    report: PullReport,
    *,
    date_range: tuple[date, date] | None = None,
) -> None:
    """Write one page of changes: records in bulk, deletions marked, problems turned into exceptions.

    A record that cannot be written is retried alone and reported; it never sinks the page.
    """
    records, deleted = [], []
    for change in changes:
        report.seen += 1
        if change.problem is not None:
            problem_record(connection, job, object_type, change.problem, "")
            report.failed += 1
        elif change.deleted:
            deleted.append(change.external_id)
        elif change.record is not None and _in_range(change, date_range):
            records.append(change.record)
        else:
            report.skipped += 1
    # the same record twice in a page (an overlap, a re-sent webhook): the last one wins
    latest = {record.external_id: record for record in records}
    report.skipped += len(records) - len(latest)
    records = list(latest.values())
    if records:
        written, failed = page_write(connection, job, records)
        failed_ids = {record.external_id for record in failed}
        ok = [record for record in records if record.external_id not in failed_ids]
        after_write(connection, job, object_type, ok, written)
        report.created += len(written.created)
        report.updated += len(written.updated)
        report.skipped += len(written.unchanged)
        report.failed += len(failed)
    if deleted:
        report.deleted += len(
            deletions_record(connection=connection, object_type=object_type, external_ids=deleted)
        )


def cursor_begin(cursor: SyncCursor, *, floor: date | None = None) -> None:
    """Start a run from the cursor (minus the overlap window), unless one is under way: it resumes."""
    if cursor.run_started:
        return
    since = cursor.since - overlap() if cursor.since else None
    if since is None and floor is not None:
        since = datetime.combine(floor, time.min, tzinfo=UTC)
    cursor.run_since, cursor.run_page, cursor.run_high_water = since, "", cursor.since
    cursor.run_started = True
    cursor.save()


def cursor_advance(cursor: SyncCursor, page: ChangePage) -> None:
    """Note a written page on the cursor (call it in the page's transaction): the next page's token, or,
    after the last page, the newest change time seen as the cursor's new start."""
    newest = [c.updated_at for c in page.changes if c.updated_at] + [page.high_water]
    newest = [value for value in newest if value is not None]
    if newest:
        top = max(newest)
        if cursor.run_high_water is None or top > cursor.run_high_water:
            cursor.run_high_water = top
    if page.next_page:
        cursor.run_page = page.next_page
    else:
        cursor.since = cursor.run_high_water or cursor.since
        cursor.run_started, cursor.run_page, cursor.run_since = False, "", None
        cursor.pulled_at = timezone.now()
    cursor.save()


def pull(
    connection: Any,
    object_type: str,
    job: SyncJob | None = None,
    *,
    floor: date | None = None,
    heartbeat: Callable[[int], None] | None = None,
) -> PullReport:
    """Read everything that changed since the cursor (minus the overlap) and write it, page by page."""
    connector = connection.connector()
    report = PullReport()
    cursor, _ = SyncCursor.objects.get_or_create(connection=connection, object_type=object_type)
    cursor_begin(cursor, floor=floor)
    while True:
        page: ChangePage = connector.list_changes(
            object_type, since=cursor.run_since, page=cursor.run_page or None
        )
        report.pages += 1
        with transaction.atomic():
            changes_write(connection, job, object_type, page.changes, report)
            cursor_advance(cursor, page)
        if heartbeat is not None:
            heartbeat(len(page.changes))
        if not page.next_page:
            return report


def backfill(
    connection: Any,
    object_type: str,
    job: SyncJob,
    *,
    date_range: tuple[date, date],
    heartbeat: Callable[[int], None] | None = None,
) -> PullReport:
    """Read a date range again, from the start of the range, resuming at the page the job last finished.

    The job's params hold the page token per object type, committed with each page; the cursor of the
    incremental pull is left alone.
    """
    connector = connection.connector()
    report = PullReport()
    state = job.params.setdefault("backfill_pages", {})
    if state.get(object_type) == "done":
        return report
    since = datetime.combine(date_range[0], time.min, tzinfo=UTC)
    while True:
        page = connector.list_changes(object_type, since=since, page=state.get(object_type) or None)
        report.pages += 1
        with transaction.atomic():
            changes_write(connection, job, object_type, page.changes, report, date_range=date_range)
            state[object_type] = page.next_page or "done"
            SyncJob.objects.filter(pk=job.pk).update(params=job.params)
        if heartbeat is not None:
            heartbeat(len(page.changes))
        if not page.next_page:
            return report


def fetch_one(connection: Any, object_type: str, external_id: str, job: SyncJob | None = None) -> PullReport:
    """Re-fetch one record a webhook told us about (the webhook body itself is never trusted)."""
    report = PullReport()
    change = connection.connector().fetch(object_type, external_id)
    with transaction.atomic():
        changes_write(connection, job, object_type, [change], report)
    return report


def supported_types(connection: Any, wanted: Iterable[str]) -> list[str]:
    connector = connection.connector()
    return [t for t in ObjectType.values if t in set(wanted) and connector.supports(t, "list_changes")]
