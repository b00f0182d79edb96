"""The reconciliation run on a daily-summary profile: members of a posted summary are in the books,
documents of a closed day in no posted summary are missing (naming the day and currency), a member that
changed after its summary was posted is found until the summary is posted again, and each posted
summary's totals are compared with its members'."""

from __future__ import annotations

import itertools
import sys
import types
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection as db_connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reconciliation.checks import reconcile
from reconciliation.models import ReconciliationException
from reconciliation.services import exception_fingerprint, exception_record
from sync import mapping
from sync.models import (
    Binding,
    Invoice,
    InvoiceLine,
    PushOperation,
    SummaryMember,
    SummaryPosting,
    SyncProfile,
)
from sync.summary import summaries_compose
from tests.factories import ConnectionFactory, InvoiceFactory, InvoiceLineFactory

pytestmark = pytest.mark.django_db
DAY = date(2026, 3, 1)
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.RECONCILIATION_MISSING_AFTER_MINUTES = 0
    settings.BASE_CURRENCY = "GBP"


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch):
    fake = types.ModuleType("sync.mirror")
    fake.copies_refresh = lambda *a, **k: types.SimpleNamespace(duplicates=[], skipped_types=[], failed=0)
    monkeypatch.setitem(sys.modules, "sync.mirror", fake)


@pytest.fixture
def shop():
    source = ConnectionFactory(name="Shop", platform="csv")
    ledger = ConnectionFactory(name="Ledger", platform="csv")
    profile = SyncProfile.objects.create(
        name="Shop to ledger, daily",
        source=source,
        destination=ledger,
        object_types=["invoice"],
        posting_mode=SyncProfile.PostingMode.DAILY_SUMMARY,
    )
    return types.SimpleNamespace(source=source, ledger=ledger, profile=profile)


def sale(shop, day: date = DAY, **values) -> Invoice:
    invoice = InvoiceFactory(source_connection=shop.source, issue_date=day, **values)
    InvoiceLineFactory(invoice=invoice, line_number=1)
    Binding.objects.create(
        connection=shop.source,
        object_type="invoice",
        object_id=invoice.pk,
        external_id=f"s{invoice.pk}",
        is_origin=True,
    )
    return invoice


def compose(shop) -> None:
    summaries_compose(shop.profile, "invoice", mapping.MappingTable())


def post(shop, posting: SummaryPosting, **snapshot) -> Binding:
    """The summary as the outbox leaves it in the ledger at its current version."""
    posting.refresh_from_db()
    binding, _ = Binding.objects.update_or_create(
        connection=shop.ledger,
        object_type=posting.kind,
        object_id=posting.pk,
        defaults={
            "external_id": f"S{posting.pk}",
            "document_version": posting.row_version,
            "snapshot": snapshot,
        },
    )
    PushOperation.objects.create(
        profile=shop.profile,
        connection=shop.ledger,
        object_type=posting.kind,
        object_id=posting.pk,
        document_version=posting.row_version,
        operation="create" if posting.row_version == 1 else "update",
        idempotency_key=f"key-{next(_keys)}",
        reference=posting.number,
        state="succeeded",
        attempts=1,
    )
    return binding


def change(invoice: Invoice, total: str) -> None:
    """A late change at the source: the line and the total, a new version."""
    InvoiceLine.objects.filter(invoice=invoice).update(total=Decimal(total), tax_amount=Decimal(total) / 6)
    Invoice.objects.filter(pk=invoice.pk).update(
        total=Decimal(total),
        lines_total=Decimal(total),
        row_version=F("row_version") + 1,
        updated_at=timezone.now(),
    )


def open_exceptions(**filters):
    return ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES, **filters)


# --- presence -----------------------------------------------------------------------------------------
def test_members_of_a_posted_summary_are_in_the_books(shop):
    first, second = sale(shop), sale(shop)
    compose(shop)
    post(shop, SummaryPosting.objects.get())

    report = reconcile()

    assert (report.checked, report.found) == (3, 0)  # two sales and their summary
    assert not ReconciliationException.objects.exists()
    assert first.pk and second.pk


def test_a_missing_finding_from_before_the_summary_was_posted_resolves(shop):
    invoice = sale(shop)
    reconcile()
    exception = open_exceptions().get()
    assert (exception.kind, exception.object_id) == ("missing_in_destination", invoice.pk)

    compose(shop)
    post(shop, SummaryPosting.objects.get())
    reconcile()

    exception.refresh_from_db()
    assert exception.state == "resolved" and exception.resolved_by_system


def test_a_sale_of_a_closed_day_in_no_summary_is_missing_naming_the_day_and_currency(shop):
    invoice = sale(shop, currency="EUR")
    sale(shop, day=timezone.localdate())  # today: the day is not closed, nothing is owed yet

    reconcile()

    exception = open_exceptions().get()
    assert (exception.kind, exception.object_id, exception.connection) == (
        "missing_in_destination",
        invoice.pk,
        shop.ledger,
    )
    assert f"{invoice.number} of 2026-03-01 (EUR) is in no daily summary posted to Ledger" in exception.title
    assert exception.details["summary"] == {"day": "2026-03-01", "currency": "EUR"}


def test_the_missing_grace_period_runs_from_the_close_of_the_day(shop, settings):
    yesterday = timezone.localdate() - timedelta(days=1)
    sale(shop, day=yesterday)
    Invoice.objects.update(created_at=timezone.now() - timedelta(days=2))
    settings.SYNC_SUMMARY_GRACE_MINUTES = 0
    settings.RECONCILIATION_MISSING_AFTER_MINUTES = (
        timezone.localtime() - timezone.localtime().replace(hour=0, minute=0, second=0)
    ).seconds // 60 + 5

    assert reconcile().found == 0  # yesterday closed at midnight: not yet past the grace period

    settings.RECONCILIATION_MISSING_AFTER_MINUTES = 0
    assert reconcile().found == 1


def test_drafts_and_void_sales_are_owed_no_summary(shop):
    sale(shop, status="draft")
    sale(shop, status="void")

    assert reconcile().found == 0


def test_a_composed_summary_not_posted_names_itself_and_what_holds_it_back(shop):
    invoice = sale(shop)
    compose(shop)
    posting = SummaryPosting.objects.get()
    op = PushOperation.objects.create(
        profile=shop.profile,
        connection=shop.ledger,
        object_type=posting.kind,
        object_id=posting.pk,
        document_version=posting.row_version,
        operation="create",
        idempotency_key="blocked-1",
        reference=posting.number,
        state="blocked",
        error="no tax code mapped for rate 20",
    )
    held, _ = exception_record(
        kind="mapping_missing",
        fingerprint=exception_fingerprint("mapping_missing", shop.profile.pk, "invoice", invoice.pk),
        title=f"Invoice {invoice.number} holds back daily summary {posting.number}: no tax code",
        connection=shop.ledger,
        object_type="invoice",
        object_id=invoice.pk,
    )

    reconcile()

    exception = open_exceptions(kind="missing_in_destination").get()
    assert f"its daily summary {posting.number} is not in Ledger" in exception.title
    assert f"held back by mapping missing (exception #{held.pk})" in exception.title
    assert exception.details["held_by"] == [
        {"exception": held.pk, "kind": "mapping_missing", "text": held.title},
        {"operation": op.pk, "state": "blocked", "text": "no tax code mapped for rate 20"},
    ]
    assert f"outbox operation #{op.pk} blocked: no tax code mapped for rate 20" in exception.message
    assert exception.details["summary"]["number"] == posting.number


def test_a_summary_deleted_in_the_ledger_leaves_its_members_missing(shop):
    sale(shop)
    compose(shop)
    binding = post(shop, SummaryPosting.objects.get())
    Binding.objects.filter(pk=binding.pk).update(remote_deleted=True)

    reconcile()

    assert "was deleted in Ledger" in open_exceptions(kind="missing_in_destination").get().title


# --- late changes -------------------------------------------------------------------------------------
def test_a_member_changed_after_posting_is_found_until_its_summary_is_posted_again(shop):
    changed, unchanged = sale(shop), sale(shop)
    compose(shop)
    posting = SummaryPosting.objects.get()
    post(shop, posting)
    change(changed, "150.00")

    reconcile()  # not composed again yet
    exception = open_exceptions(object_type="invoice").get()
    assert (exception.kind, exception.object_id, exception.details["rule"]) == (
        "missing_in_destination",
        changed.pk,
        "summary_member",
    )
    assert "version 1 counted, now 2" in exception.message

    compose(shop)  # composed again, not posted yet: the ledger still counts the old version
    reconcile()
    exception.refresh_from_db()
    assert exception.is_open and "still holds version 1" in exception.message
    assert not open_exceptions(object_id=unchanged.pk, object_type="invoice").exists()

    post(shop, posting)
    reconcile()
    exception.refresh_from_db()
    assert exception.state == "resolved"


def test_a_member_changed_too_lately_is_not_judged_yet(shop, settings):
    invoice = sale(shop)
    compose(shop)
    post(shop, SummaryPosting.objects.get())
    Invoice.objects.update(created_at=timezone.now() - timedelta(days=2))
    change(invoice, "150.00")
    settings.RECONCILIATION_MISSING_AFTER_MINUTES = 60

    reconcile()

    assert not open_exceptions(object_type="invoice").exists()


# --- summary totals -----------------------------------------------------------------------------------
def test_a_posted_summary_whose_members_changed_since_it_was_composed_is_an_amount_finding(shop):
    first, _ = sale(shop), sale(shop)
    compose(shop)
    posting = SummaryPosting.objects.get()
    post(shop, posting)
    change(first, "150.00")

    reconcile()

    exception = open_exceptions(object_type="summary_invoice").get()
    assert (exception.kind, exception.object_id, exception.connection) == (
        "amount_mismatch",
        posting.pk,
        shop.ledger,
    )
    assert exception.fingerprint == exception_fingerprint(
        "amount_mismatch", "summary_invoice", posting.pk, shop.ledger.pk
    )
    assert exception.amount_at_risk == Decimal("30.0000")
    assert exception.details["fields"]["total"] == {
        "canonical": "270.00",
        "copies": {"composed": "240.00"},
    }
    assert exception.document_number == posting.number

    compose(shop)
    post(shop, posting)
    reconcile()
    exception.refresh_from_db()
    assert exception.state == "resolved"


def test_a_summary_the_ledger_holds_with_other_totals_is_an_amount_finding(shop):
    sale(shop)
    sale(shop)
    compose(shop)
    posting = SummaryPosting.objects.get()
    post(shop, posting, currency="GBP", total="230.00", tax_total="40.00")

    reconcile()

    exception = open_exceptions(object_type="summary_invoice").get()
    assert exception.details["fields"] == {
        "total": {"canonical": "240.00", "copies": {"composed": "240.00", "Ledger": "230.00"}}
    }
    assert "someone changed the summary there" in exception.message
    assert exception.amount_at_risk == Decimal("10.0000")


def test_a_summary_the_ledger_holds_as_composed_is_clean(shop):
    sale(shop)
    compose(shop)
    post(shop, SummaryPosting.objects.get(), currency="GBP", total="120.00", tax_total="20.00")

    assert reconcile().found == 0


def test_a_summary_re_check_looks_at_that_summary_alone(shop):
    first = sale(shop)
    sale(shop, day=date(2026, 3, 2))
    compose(shop)
    postings = list(SummaryPosting.objects.order_by("day"))
    for posting in postings:
        post(shop, posting, total="1.00")
    change(first, "150.00")

    report = reconcile(document=("summary_invoice", postings[0].pk))

    assert report.checked == 1
    assert list(open_exceptions().values_list("object_type", "object_id")) == [
        ("summary_invoice", postings[0].pk)
    ]


def test_queries_do_not_grow_with_the_number_of_sales_and_summaries(shop, settings):
    settings.RECONCILIATION_PAGE_SIZE = 500

    def queries(days: int) -> int:
        ReconciliationException.objects.all().delete()
        for offset in range(days):
            for _ in range(3):
                sale(shop, day=DAY + timedelta(days=offset))
        compose(shop)
        for posting in SummaryPosting.objects.all():
            if not Binding.objects.filter(object_type=posting.kind, object_id=posting.pk).exists():
                post(shop, posting, total="1.00")
        change(Invoice.objects.order_by("pk").last(), "150.00")
        reconcile()
        with CaptureQueriesContext(db_connection) as captured:
            reconcile()
        return len(captured)

    assert queries(2) == queries(12)
    assert SummaryMember.objects.count() == 42
