"""Incremental pull: cursor with an overlap window, dedupe by binding and content hash, deletions kept,
resumable pages, backfill by date range, and schedules written to django-q2."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.base import Change, ChangePage
from connectors.models import Connection
from sync import pull as pulling
from sync.models import Binding, Invoice, SyncCursor, SyncJob
from tests.factories import ConnectionFactory
from tests.sync import engine


@pytest.mark.django_db(transaction=True)
def test_a_pull_from_the_quickbooks_sandbox_is_incremental_deduplicated_and_records_deletions(live_server):
    source = engine.destination("quickbooks", live_server.url)  # the sandbox company, read as a source

    first = pulling.pull(source, "invoice")

    assert first.created >= 15 and first.failed == 0, first
    cursor = SyncCursor.objects.get(connection=source, object_type="invoice")
    assert cursor.since is not None and not cursor.run_started
    bound = Binding.objects.filter(connection=source, object_type="invoice", is_origin=True)
    assert bound.count() == first.created

    again = pulling.pull(source, "invoice")
    assert (again.created, again.updated) == (0, 0)  # the overlap re-reads, the content hash skips

    connector = source.connector()
    invoice = (
        Invoice.objects.filter(pk__in=bound.values("object_id"), status="open", amount_paid=0)
        .order_by("pk")
        .first()
    )
    binding = bound.get(object_id=invoice.pk)
    change = connector.fetch("invoice", binding.external_id)
    connector.delete(
        "invoice", binding.external_id, remote_version=change.remote_version, idempotency_key="del-1"
    )

    third = pulling.pull(source, "invoice")

    assert third.deleted == 1, third
    invoice.refresh_from_db()
    binding.refresh_from_db()
    assert invoice.status == "deleted" and binding.remote_deleted
    assert invoice.history.first().history_change_reason == "deleted at the source"


class PagedConnector:
    """A source whose changes come three to a page, for the resume test."""

    def __init__(self, changes: list[Change]) -> None:
        self.changes = changes
        self.calls: list[tuple[datetime | None, str | None]] = []

    def supports(self, object_type: str, operation: str) -> bool:
        return True

    def list_changes(
        self, object_type: str, *, since: datetime | None, page: str | None = None
    ) -> ChangePage:
        self.calls.append((since, page))
        start = int(page or 0)
        chunk = self.changes[start : start + 3]
        following = str(start + 3) if start + 3 < len(self.changes) else None
        return ChangePage(chunk, following, max(c.updated_at for c in chunk))


def _changes(count: int) -> list[Change]:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        Change("invoice", r.external_id, r, updated_at=base + timedelta(minutes=i))
        for i, r in enumerate(engine.invoice_record(i) for i in range(count))
    ]


@pytest.mark.django_db
def test_a_pull_cut_off_by_a_crash_resumes_at_its_last_committed_page(monkeypatch):
    source = ConnectionFactory(platform="csv")
    paged = PagedConnector(_changes(8))
    monkeypatch.setattr(Connection, "connector", lambda self: paged)
    real_write = pulling.changes_write
    pages = []

    def dying_write(*args, **kwargs):
        pages.append(1)
        if len(pages) == 2:
            raise SystemExit("worker killed")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(pulling, "changes_write", dying_write)
    with pytest.raises(SystemExit):
        pulling.pull(source, "invoice")
    cursor = SyncCursor.objects.get(connection=source, object_type="invoice")
    assert (cursor.run_started, cursor.run_page, cursor.since) == (True, "3", None)
    assert Invoice.objects.count() == 3

    monkeypatch.setattr(pulling, "changes_write", real_write)
    report = pulling.pull(source, "invoice")

    # the second page was read but never committed; the run resumes there, not from the start
    assert paged.calls == [(None, None), (None, "3"), (None, "3"), (None, "6")]
    assert report.created == 5 and Invoice.objects.count() == 8
    cursor.refresh_from_db()
    assert cursor.since == datetime(2026, 11, 1, 0, 7, tzinfo=UTC) and not cursor.run_started

    paged.calls.clear()
    pulling.pull(source, "invoice")
    assert paged.calls[0][0] == cursor.since - timedelta(seconds=300)  # the overlap window, inclusive


@pytest.mark.django_db
def test_a_backfill_reads_only_its_date_range_and_never_double_books(monkeypatch):
    source = ConnectionFactory(platform="csv")
    paged = PagedConnector(_changes(10))
    monkeypatch.setattr(Connection, "connector", lambda self: paged)
    job = SyncJob.objects.create(kind="backfill", connection=source, params={})
    in_range = (date(2026, 10, 3), date(2026, 10, 6))

    report = pulling.backfill(source, "invoice", job, date_range=in_range)
    again = pulling.backfill(
        source, "invoice", SyncJob.objects.create(kind="backfill", connection=source), date_range=in_range
    )

    assert report.created == 4 and again.created == 0
    assert Invoice.objects.count() == 4
    assert SyncJob.objects.get(pk=job.pk).params["backfill_pages"] == {"invoice": "done"}
    assert not SyncCursor.objects.filter(connection=source).exists()  # the incremental cursor is untouched


@pytest.mark.django_db
def test_schedules_are_declared_in_code_and_follow_the_profiles(django_capture_on_commit_callbacks):
    from django_q.models import Schedule

    from sync.models import SyncProfile
    from sync.schedules import declared, schedules_sync

    system = {item.name for item in declared()}  # the schedules that belong to no profile
    assert "ledgerlink:reap jobs" in system
    with django_capture_on_commit_callbacks(execute=True):
        profile = SyncProfile.objects.create(
            name="nightly",
            source=ConnectionFactory(platform="csv"),
            destination=ConnectionFactory(platform="xero"),
            schedule="end_of_day",
        )
    names = set(Schedule.objects.values_list("name", flat=True))
    assert names == {*system, f"ledgerlink:profile {profile.pk}"}
    nightly = Schedule.objects.get(name=f"ledgerlink:profile {profile.pk}")
    assert (nightly.func, nightly.args, nightly.schedule_type) == (
        "sync.tasks.profile_scheduled",
        str(profile.pk),
        "D",
    )

    with django_capture_on_commit_callbacks(execute=True):
        profile.schedule = "manual"
        profile.save()
    assert set(Schedule.objects.values_list("name", flat=True)) == system
    assert schedules_sync() == {"created": [], "updated": [], "removed": []}
