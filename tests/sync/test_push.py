"""Pushing canonical documents to the QuickBooks and Xero sandboxes over HTTP, through the outbox."""

from __future__ import annotations

import pytest

from reconciliation.models import ReconciliationException
from sandbox.models import SandboxIdempotencyKey
from sync import push as pushing
from sync.models import Binding, MappingRow, PushOperation
from tests.sync import engine

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_a_push_creates_each_invoice_once_and_a_second_run_sends_nothing(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, records = engine.source_with_invoices(6)
    profile = engine.mapped_profile(source, dest)

    report = pushing.push_run(profile)

    # six invoices, and before them their customers: found in the destination by email, or created
    assert (report.failed, report.blocked) == (0, 0), report
    assert Binding.objects.filter(connection=dest, object_type="customer").count() == 3
    created_customers = PushOperation.objects.filter(object_type="customer", state="succeeded").count()
    assert report.created == 6 + created_customers
    bindings = Binding.objects.filter(connection=dest, object_type="invoice")
    assert bindings.count() == 6
    assert (
        PushOperation.objects.filter(profile=profile, state="succeeded", object_type="invoice").count() == 6
    )
    connector = dest.connector()
    for record in records:
        found = connector.find_by_reference("invoice", record.number)
        assert found is not None and found.external_id in set(bindings.values_list("external_id", flat=True))

    again = pushing.push_run(profile)
    assert (again.seen, again.created) == (0, 0)


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_an_unmapped_tax_rate_blocks_only_that_invoice_until_it_is_mapped(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, _ = engine.source_with_invoices(3)
    from sync.services import records_write

    records_write(connection=source, records=[engine.invoice_record(50, tax_rate=engine.Decimal("17.5"))])
    profile = engine.mapped_profile(source, dest)

    report = pushing.push_run(profile)

    assert (
        report.blocked,
        PushOperation.objects.filter(object_type="invoice", state="succeeded").count(),
    ) == (1, 3)
    exception = ReconciliationException.objects.get(kind="mapping_missing")
    assert "17.5" in exception.title and "tax code" in exception.title
    assert exception.details["mapping_url"].startswith("/admin/sync/mappingset/")
    target = "2" if platform == "quickbooks" else "OUTPUT2"
    MappingRow.objects.create(
        mapping_set=profile.mapping_set, kind="tax_code", source_value="17.5", target_value=target
    )

    second = pushing.push_run(profile)

    assert (second.created, second.blocked) == (1, 0), second
    exception.refresh_from_db()
    assert exception.state == "resolved"


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_payments_follow_their_invoices_and_an_unmatched_payment_is_an_exception(live_server, platform):
    from connectors.base import PaymentRecord
    from sync.services import records_write

    dest = engine.destination(platform, live_server.url)
    source, records = engine.source_with_invoices(2)
    records_write(connection=source, records=[engine.payment_record(1, records[0])])
    lonely = PaymentRecord(
        external_id="PAY-LONE",
        reference="PAY-LONE",
        customer=records[1].customer,
        transaction_date=records[1].issue_date,
        currency="GBP",
        amount=engine.Decimal("10.00"),
    )
    records_write(connection=source, records=[lonely])
    profile = engine.mapped_profile(source, dest, object_types=("invoice", "payment"))

    report = pushing.push_run(profile)

    assert report.failed == 0, report
    assert (
        PushOperation.objects.filter(object_type__in=["invoice", "payment"], state="succeeded").count() == 3
    )
    assert Binding.objects.filter(connection=dest, object_type="payment").count() == 1
    unmatched = ReconciliationException.objects.get(kind="unmatched_payment")
    assert "PAY-LONE" in unmatched.title


# --- updates: versions moved by the destination itself, verified retries, stale lookups ----------------
def _pay_there(connector, platform: str, invoice_id: str, amount, reference: str = "BANK-1") -> None:
    """A payment recorded in the destination by hand (an accountant), against one of our invoices."""
    from datetime import date

    from connectors.base import AllocationRecord, PaymentRecord, PushContext

    record = PaymentRecord(
        external_id="",
        reference=reference,
        customer=None,
        transaction_date=date(2026, 10, 20),
        currency="GBP",
        amount=amount,
        allocations=(AllocationRecord(invoice_number="X", amount=amount, invoice_external_id=invoice_id),),
    )
    customer = connector.fetch("invoice", invoice_id).record.customer.external_id
    context = PushContext(
        reference=reference, customer_id=customer, deposit_account="090", invoice_ids={"X": invoice_id}
    )
    connector.record_payment(record, context, idempotency_key=f"by-hand-{reference}")


def _due_moved(source, index: int, days: int = 7):
    """The source moves invoice `index`'s due date: a new version of it to push as an update."""
    from dataclasses import replace
    from datetime import timedelta

    from sync.services import records_write

    record = engine.invoice_record(index)
    moved = replace(record, due_date=record.due_date + timedelta(days=days))
    records_write(connection=source, records=[moved])
    return moved


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_an_update_after_a_payment_there_is_not_a_conflict(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, _ = engine.source_with_invoices(1)
    profile = engine.mapped_profile(source, dest)
    pushing.push_run(profile)
    binding = Binding.objects.get(connection=dest, object_type="invoice")
    connector = dest.connector()
    _pay_there(connector, platform, binding.external_id, engine.Decimal("10.00"))
    moved = _due_moved(source, 0)

    report = pushing.push_run(profile)

    assert not ReconciliationException.objects.filter(kind="conflict").exists()
    copy = connector.fetch("invoice", binding.external_id).record
    assert copy.amount_paid == engine.Decimal("10.00")  # the payment made there is still applied
    if platform == "xero":  # Xero refuses to edit an invoice with a payment: that, and not a conflict
        assert report.failed == 1, report
        failure = ReconciliationException.objects.get(kind="sync_failure")
        assert "payment" in failure.message
        return
    assert (report.updated, report.failed) == (1, 0), report
    assert copy.due_date == moved.due_date


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_an_update_after_someone_edited_the_copy_there_is_a_conflict(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, _ = engine.source_with_invoices(1)
    profile = engine.mapped_profile(source, dest)
    pushing.push_run(profile)
    binding = Binding.objects.get(connection=dest, object_type="invoice")
    connector = dest.connector()
    edit = {"DueDate": "2027-01-31"}
    current = connector.fetch("invoice", binding.external_id)
    connector.update(
        "invoice", binding.external_id, edit, remote_version=current.remote_version, idempotency_key="edit-1"
    )
    _due_moved(source, 0)

    report = pushing.push_run(profile)

    assert report.failed == 1, report
    conflict = ReconciliationException.objects.get(kind="conflict")
    assert "changed in the destination" in conflict.title
    assert str(connector.fetch("invoice", binding.external_id).record.due_date) == "2027-01-31"


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_an_update_whose_answer_was_lost_is_verified_against_the_copy(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, _ = engine.source_with_invoices(1)
    profile = engine.mapped_profile(source, dest)
    pushing.push_run(profile)
    binding = Binding.objects.get(connection=dest, object_type="invoice")
    moved = _due_moved(source, 0)

    def lost(point: str, operation: PushOperation) -> None:
        if point == "after_write" and operation.operation == "update":
            raise KeyboardInterrupt("worker killed")  # a BaseException: nothing after it runs

    pushing.common.CRASH_HOOK = lost
    try:
        with pytest.raises(KeyboardInterrupt):
            pushing.push_run(profile)
    finally:
        pushing.common.CRASH_HOOK = None
    binding.refresh_from_db()
    assert binding.document_version == 1  # the update landed, and we never heard back
    SandboxIdempotencyKey.objects.all().delete()  # keys expire: the retry is not answered from one

    report = pushing.push_run(profile)

    assert (report.updated, report.failed) == (1, 0), report
    assert not ReconciliationException.objects.filter(kind="conflict").exists()
    binding.refresh_from_db()
    assert binding.document_version == 2
    assert dest.connector().fetch("invoice", binding.external_id).record.due_date == moved.due_date


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_a_create_found_after_a_crash_is_bound_at_the_version_it_was_sent_with(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, _ = engine.source_with_invoices(1)
    profile = engine.mapped_profile(source, dest)

    def lost(point: str, operation: PushOperation) -> None:
        if point == "after_write" and operation.object_type == "invoice":
            raise KeyboardInterrupt("worker killed")

    pushing.common.CRASH_HOOK = lost
    try:
        with pytest.raises(KeyboardInterrupt):
            pushing.push_run(profile)
    finally:
        pushing.common.CRASH_HOOK = None
    moved = _due_moved(source, 0)  # version 2 arrives before the worker is back

    report = pushing.push_run(profile)

    assert report.failed == 0, report
    binding = Binding.objects.get(connection=dest, object_type="invoice")
    assert binding.document_version == 2
    copy = dest.connector().fetch("invoice", binding.external_id).record
    assert copy.due_date == moved.due_date  # version 2's content is there, not only its number
    kind, field = ("Invoice", "DocNumber") if platform == "quickbooks" else ("invoice", "InvoiceNumber")
    assert [r[field] for r in engine.live_records(platform, kind)].count("INV-00000") == 1


class _Allocating:
    """A destination that takes credit allocations and answers each with nothing more (no HTTP)."""

    batch_limit = 1
    customer_reference_is_name = False

    def __init__(self) -> None:
        self.calls = 0

    @staticmethod
    def supports(object_type, operation):
        return True

    @staticmethod
    def parse(object_type, raw):
        raise ValueError("no record in an allocation answer")

    def allocate_credit_note(self, external_id, record, context, *, idempotency_key):
        assert set(context.invoice_ids) == {a.invoice_number for a in record.allocations}
        self.calls += 1
        return []


def _notes_bound(source, dest, count: int) -> None:
    from sync.models import CreditAllocation, CreditNote
    from tests.factories import InvoiceFactory

    for _ in range(count):
        invoice = InvoiceFactory(source_connection=source)
        note = CreditNote.objects.create(
            source_connection=source,
            number=f"CN-{invoice.number}",
            customer=invoice.customer,
            issue_date=invoice.issue_date,
            currency="GBP",
            total=engine.Decimal("12.00"),
        )
        CreditAllocation.objects.create(credit_note=note, invoice=invoice, amount=engine.Decimal("12.00"))
        Binding.objects.create(
            connection=dest, object_type="invoice", object_id=invoice.pk, external_id=f"i-{invoice.pk}"
        )
        Binding.objects.create(
            connection=dest, object_type="credit_note", object_id=note.pk, external_id=f"c-{note.pk}"
        )


def test_credit_allocations_read_their_invoices_destination_ids_once_per_page():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import ConnectionFactory

    source = ConnectionFactory(platform="csv")
    dest = ConnectionFactory(platform="xero")
    profile = engine.SyncProfile.objects.create(
        name="notes", source=source, destination=dest, object_types=["invoice", "credit_note"]
    )

    def invoice_reads(count: int) -> int:
        _notes_bound(source, dest, count)
        pusher = pushing.Pusher(profile)
        pusher.connector = _Allocating()
        with CaptureQueriesContext(connection) as queries:
            pusher.allocations_push()
        assert pusher.connector.calls == count
        return sum(1 for q in queries if "sync_binding" in q["sql"] and "'invoice'" in q["sql"])

    assert invoice_reads(3) == invoice_reads(9) == 1
    assert PushOperation.objects.filter(operation="allocate", state="succeeded").count() == 12
