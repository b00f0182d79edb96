"""The destination mirror over the QuickBooks and Xero sandboxes (real HTTP): what a destination holds
now goes into the bindings' snapshots, never into the canonical documents; unbound copies carrying a
bound document's number come back as duplicates."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from connectors.base import AllocationRecord, PaymentRecord, PushContext
from sync import mirror
from sync import push as pushing
from sync.models import Binding, Invoice, Payment, SyncCursor
from sync.pull import pull
from sync.services import records_write
from tests.sync import engine

pytestmark = pytest.mark.django_db(transaction=True)
DEPOSIT = {"quickbooks": "", "xero": "090"}


def _pushed(dest, platform: str, count: int, *, payments: bool = False):
    source, records = engine.source_with_invoices(count)
    if payments:
        records_write(connection=source, records=[engine.payment_record(0, records[0])])
    types = ("invoice", "payment") if payments else ("invoice",)
    profile = engine.mapped_profile(source, dest, object_types=types, prefix="LL-")
    report = pushing.push_run(profile)
    assert (report.failed, report.blocked) == (0, 0), report
    return source, records, profile


def _binding(dest, object_type: str, document) -> Binding:
    return Binding.objects.get(connection=dest, object_type=object_type, object_id=document.pk)


def _pay_by_hand(dest, platform: str, invoice: Invoice, reference: str) -> None:
    """A payment recorded in the destination by someone there, not by us."""
    binding = _binding(dest, "invoice", invoice)
    customer = Binding.objects.get(connection=dest, object_type="customer", object_id=invoice.customer_id)
    payment = PaymentRecord(
        external_id=reference,
        reference=reference,
        customer=None,
        transaction_date=invoice.issue_date,
        currency=invoice.currency,
        amount=invoice.total,
        allocations=(AllocationRecord(invoice_number=invoice.number, amount=invoice.total),),
    )
    context = PushContext(
        reference=reference,
        customer_id=customer.external_id,
        deposit_account=DEPOSIT[platform],
        invoice_ids={invoice.number: binding.external_id},
    )
    dest.connector().record_payment(payment, context, idempotency_key=f"by-hand-{reference}")


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_an_invoice_paid_in_the_destination_shows_paid_in_its_snapshot_and_nowhere_else(
    live_server, platform
):
    dest = engine.destination(platform, live_server.url)
    _, records, _ = _pushed(dest, platform, 3)
    invoice = Invoice.objects.get(number=records[1].number)
    before = _binding(dest, "invoice", invoice)
    versions = (invoice.row_version, invoice.status, invoice.history.count())
    _pay_by_hand(dest, platform, invoice, "BANK-7781")
    beats: list[int] = []

    report = mirror.copies_refresh(dest, ["invoice"], heartbeat=beats.append)

    after = _binding(dest, "invoice", invoice)
    assert after.snapshot["status"] == "paid" and after.snapshot["amount_due"] == "0.00"
    assert after.snapshot["amount_paid"] == str(records[1].total)
    assert after.snapshot["number"] == f"LL-{records[1].number}"
    assert after.snapshot["customer"] == records[1].customer.email  # our customer, as we name it
    assert after.snapshot_at > before.snapshot_at
    # only the snapshot: not the remote version (it guards our updates), not the canonical invoice
    assert (after.remote_version, after.document_version) == (before.remote_version, before.document_version)
    invoice.refresh_from_db()
    assert (invoice.row_version, invoice.status, invoice.history.count()) == versions
    others = Binding.objects.filter(connection=dest, object_type="invoice").exclude(pk=after.pk)
    assert all(b.snapshot["status"] == "open" for b in others)
    assert report.refreshed == 3 and report.duplicates == [] and report.failed == 0, report
    assert report.unbound == report.seen - 3  # the sandbox company's own invoices
    assert sum(beats) == report.seen and len(beats) == report.pages


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_a_copy_voided_in_the_destination_is_snapshotted_void_and_counted_deleted(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    _, records, _ = _pushed(dest, platform, 2)
    invoice = Invoice.objects.get(number=records[0].number)
    binding = _binding(dest, "invoice", invoice)
    connector = dest.connector()
    connector.void("invoice", binding.external_id, remote_version="", idempotency_key="void-by-hand")

    report = mirror.copies_refresh(dest, ["invoice"])

    assert _binding(dest, "invoice", invoice).snapshot["status"] == "void"
    assert (report.deleted, report.refreshed) == (1, 1), report
    invoice.refresh_from_db()
    assert invoice.status == "open"


def test_an_unbound_quickbooks_invoice_with_a_bound_number_is_reported_as_a_duplicate(live_server):
    dest = engine.destination("quickbooks", live_server.url)
    _, records, profile = _pushed(dest, "quickbooks", 2)
    invoice = Invoice.objects.get(number=records[0].number)
    pusher = pushing.Pusher(profile)
    _, _, payload = pusher.prepare("invoice", invoice, "create", None)
    twin = dest.connector().create("invoice", payload, idempotency_key="keyed-twice")

    report = mirror.copies_refresh(dest, ["invoice"])

    bound = _binding(dest, "invoice", invoice)
    assert report.duplicates == [
        mirror.Duplicate(
            object_type="invoice",
            external_id=twin.external_id,
            number=f"LL-{records[0].number}",
            object_id=invoice.pk,
            bound_external_id=bound.external_id,
            snapshot=report.duplicates[0].snapshot,
        )
    ]
    assert report.duplicates[0].snapshot["total"] == str(records[0].total)
    assert not Binding.objects.filter(connection=dest, external_id=twin.external_id).exists()

    again = mirror.copies_refresh(dest, ["invoice"], full=True)  # run twice: the same finding, once

    assert [d.external_id for d in again.duplicates] == [twin.external_id]


def test_a_number_written_with_the_mapping_prefix_is_recognised_without_the_binding_number(live_server):
    dest = engine.destination("quickbooks", live_server.url)
    _, records, profile = _pushed(dest, "quickbooks", 1)
    invoice = Invoice.objects.get(number=records[0].number)
    Binding.objects.filter(connection=dest, object_type="invoice").update(external_number="")
    _, _, payload = pushing.Pusher(profile).prepare("invoice", invoice, "create", None)
    twin = dest.connector().create("invoice", payload, idempotency_key="keyed-again")

    report = mirror.copies_refresh(dest, ["invoice"])

    assert [(d.external_id, d.object_id) for d in report.duplicates] == [(twin.external_id, invoice.pk)]


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_a_payment_snapshot_names_its_invoices_and_a_voided_payment_reads_void(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    _, records, _ = _pushed(dest, platform, 2, payments=True)
    payment = Payment.objects.get(reference="PAY-00000")
    invoice = Invoice.objects.get(number=records[0].number)
    binding = _binding(dest, "payment", payment)
    dest.connector().void("payment", binding.external_id, remote_version="", idempotency_key="void-pay")

    report = mirror.copies_refresh(dest, ["payment"])

    snapshot = _binding(dest, "payment", payment).snapshot
    assert snapshot["status"] == "void", report
    assert [a["invoice_id"] for a in snapshot["allocations"]] == [invoice.pk]
    assert [a["external_id"] for a in snapshot["allocations"]] == [
        _binding(dest, "invoice", invoice).external_id
    ]
    payment.refresh_from_db()
    assert payment.status == "completed"


def test_a_xero_payment_split_over_two_invoices_is_read_as_one_copy_not_as_duplicates(live_server):
    dest = engine.destination("xero", live_server.url)
    source, records = engine.source_with_invoices(2)
    split = PaymentRecord(
        external_id="PAY-SPLIT",
        reference="PAY-SPLIT",
        customer=records[0].customer,
        transaction_date=date(2026, 10, 20),
        currency="GBP",
        amount=Decimal("20.00"),
        allocations=tuple(
            AllocationRecord(invoice_number=r.number, amount=Decimal("10.00")) for r in records
        ),
    )
    records_write(connection=source, records=[split])
    profile = engine.mapped_profile(source, dest, object_types=("invoice", "payment"), prefix="LL-")
    assert pushing.push_run(profile).failed == 0
    payment = Payment.objects.get(reference="PAY-SPLIT")
    binding = _binding(dest, "payment", payment)
    assert "," in binding.external_id

    report = mirror.copies_refresh(dest, ["payment"])

    assert report.duplicates == [] and report.refreshed == 1, report
    snapshot = _binding(dest, "payment", payment).snapshot
    assert snapshot["amount"] == "20.00"
    assert sorted(a["invoice_id"] for a in snapshot["allocations"]) == sorted(
        Invoice.objects.filter(number__in=[r.number for r in records]).values_list("pk", flat=True)
    )


def test_the_mirror_keeps_its_own_cursor_and_leaves_origin_bindings_to_the_pull(live_server, settings):
    settings.SYNC_PULL_OVERLAP_SECONDS = 0
    both = engine.destination("quickbooks", live_server.url)  # read as a source too
    pulled = pull(both, "invoice")
    cursor = SyncCursor.objects.get(connection=both, object_type="invoice")
    origin = Binding.objects.filter(connection=both, object_type="invoice", is_origin=True)
    stamps = dict(origin.values_list("pk", "snapshot_at"))

    first = mirror.copies_refresh(both, ["invoice"])

    assert first.origin == pulled.created and first.refreshed == 0, first
    assert dict(origin.values_list("pk", "snapshot_at")) == stamps
    assert SyncCursor.objects.get(pk=cursor.pk).since == cursor.since
    mirrored = SyncCursor.objects.get(connection=both, object_type="mirror:invoice")
    assert mirrored.since is not None and not mirrored.run_started
    # incremental: read from its own cursor, so nothing stamped before it comes back (records stamped in
    # the cursor's own second would, the boundary being inclusive; hence a cursor a day on)
    SyncCursor.objects.filter(pk=mirrored.pk).update(since=mirrored.since + timedelta(days=1))
    second = mirror.copies_refresh(both, ["invoice"])
    assert second.seen == 0, second
    assert SyncCursor.objects.get(pk=cursor.pk).since == cursor.since


def test_types_the_connector_cannot_list_are_reported_not_read(live_server):
    dest = engine.destination("xero", live_server.url)

    report = mirror.copies_refresh(dest, ["invoice", "customer", "payout"])

    assert report.object_types == ["invoice"] and report.skipped_types == ["customer", "payout"]


# --- reference data: a destination's whole customer list -----------------------------------------------
class CustomerPages:
    """A destination listing one customer a page, `pages` pages long (or handing back one page token)."""

    reference_kinds: dict[str, str] = {}
    reference_key = "id"

    def __init__(self, pages: int, *, stuck: bool = False) -> None:
        self.pages, self.stuck = pages, stuck

    def supports(self, object_type: str, operation: str) -> bool:
        return object_type == "customer"

    def list_changes(self, object_type, *, since, page=None):
        from connectors.base import Change, ChangePage, CustomerRecord

        index = int(page or 0)
        record = CustomerRecord(name=f"Customer {index}", external_id=f"C{index}")
        following = None if index + 1 >= self.pages else str(0 if self.stuck else index + 1)
        return ChangePage([Change("customer", f"C{index}", record)], following)


@pytest.mark.django_db
def test_reference_data_reads_every_customer_page_however_many_there_are(monkeypatch):
    from connectors.models import Connection
    from sync.models import ReferenceData
    from sync.reference import reference_data_refresh
    from tests.factories import ConnectionFactory

    dest = ConnectionFactory(platform="xero")
    monkeypatch.setattr(Connection, "connector", lambda self: CustomerPages(250))

    counts = reference_data_refresh(dest)

    assert counts == {"customer": 250}
    assert ReferenceData.objects.filter(connection=dest, kind="customer", code="C249").exists()


@pytest.mark.django_db
def test_reference_data_fails_loudly_on_a_page_token_that_repeats_and_keeps_what_it_had(monkeypatch):
    from connectors.base import PermanentError
    from connectors.models import Connection
    from sync.models import ReferenceData
    from sync.reference import reference_data_refresh
    from tests.factories import ConnectionFactory

    dest = ConnectionFactory(platform="xero")
    ReferenceData.objects.create(connection=dest, kind="customer", code="KEEP", name="Kept")
    monkeypatch.setattr(Connection, "connector", lambda self: CustomerPages(5, stuck=True))

    with pytest.raises(PermanentError, match="repeats its page token '0' after 2 pages"):
        reference_data_refresh(dest)

    assert list(ReferenceData.objects.filter(connection=dest).values_list("code", "active")) == [
        ("KEEP", True)
    ]
