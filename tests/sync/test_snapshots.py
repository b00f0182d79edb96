"""Binding snapshots: the copy's values on each connection, written wherever a binding is written (pull
pages, updates, deletions, every push success), in canonical terms."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from connectors.base import AllocationRecord, CreditNoteRecord, LineRecord
from sync import push as pushing
from sync import snapshots
from sync.models import Binding, Invoice, Payment
from sync.services import deletions_record, records_write
from tests.factories import ConnectionFactory
from tests.sync import engine


def _binding(connection, object_type: str, external_id: str) -> Binding:
    return Binding.objects.get(connection=connection, object_type=object_type, external_id=external_id)


# --- builders -----------------------------------------------------------------------------------------
def test_amounts_are_written_at_the_currency_minor_unit():
    assert snapshots.money(Decimal("120.0000"), "GBP") == "120.00"
    assert snapshots.money(Decimal("1500.0000"), "JPY") == "1500"
    assert snapshots.money(Decimal("12.3450"), "KWD") == "12.345"
    assert snapshots.money(Decimal("7.5"), "XXQ") == "7.5"  # not a currency: kept as it is, never guessed
    assert snapshots.money(None, "GBP") is None


def test_the_customer_is_the_lowercased_email_else_the_name():
    record = engine.invoice_record(1)
    assert snapshots.customer_key(record.customer) == "ap@northwind.example"
    assert snapshots.customer_key(replace(record.customer, email="", name="Corner Shop")) == "Corner Shop"
    assert (
        snapshots.customer_key(replace(record.customer, email=" Ap@Northwind.EXAMPLE"))
        == "ap@northwind.example"
    )


def test_an_answer_overlays_what_was_sent_but_never_blanks_it():
    sent = {"status": "paid", "total": "10.00", "due_date": "2026-11-01", "allocations": [{"amount": "1"}]}
    answer = {"status": "open", "total": None, "due_date": None, "allocations": []}
    assert snapshots.overlay(sent, answer) == {
        "status": "open",
        "total": "10.00",
        "due_date": "2026-11-01",
        "allocations": [{"amount": "1"}],
    }


# --- the pull -----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_pulled_invoice_binding_holds_the_snapshot_of_the_record_as_read():
    source, records = engine.source_with_invoices(2)
    record = records[1]

    binding = _binding(source, "invoice", record.external_id)

    assert binding.snapshot == {
        "number": "INV-00001",
        "currency": "GBP",
        "total": str(record.total.quantize(Decimal("0.01"))),
        "tax_total": str(record.tax_total),
        "amount_paid": "0.00",
        "amount_due": str(record.amount_due.quantize(Decimal("0.01"))),
        "status": "open",
        "issue_date": record.issue_date.isoformat(),
        "due_date": record.due_date.isoformat(),
        "customer": "ap@northwind.example",
        "exchange_rate": None,
    }
    assert binding.snapshot_at is not None


@pytest.mark.django_db
def test_a_changed_record_rewrites_the_snapshot_and_an_unchanged_one_leaves_it():
    source, records = engine.source_with_invoices(2)
    first = _binding(source, "invoice", records[0].external_id)
    paid = replace(records[1], status="paid", amount_paid=records[1].total, amount_due=Decimal(0))

    records_write(connection=source, records=[records[0], paid])

    again = _binding(source, "invoice", records[0].external_id)
    assert (again.snapshot, again.snapshot_at) == (first.snapshot, first.snapshot_at)
    changed = _binding(source, "invoice", paid.external_id)
    assert changed.snapshot["status"] == "paid" and changed.snapshot["amount_due"] == "0.00"
    assert changed.snapshot["amount_paid"] == str(paid.total)


@pytest.mark.django_db
def test_a_binding_written_before_snapshots_gets_one_when_its_record_is_read_again_unchanged():
    source, records = engine.source_with_invoices(1)
    Binding.objects.filter(connection=source).update(snapshot={}, snapshot_at=None)

    records_write(connection=source, records=records)

    binding = _binding(source, "invoice", records[0].external_id)
    assert binding.snapshot["number"] == "INV-00000" and binding.snapshot_at is not None


@pytest.mark.django_db
def test_a_pulled_payment_names_its_invoices_by_canonical_id_and_by_their_id_on_the_connection():
    source, records = engine.source_with_invoices(2)
    payment = engine.payment_record(7, records[0])
    lonely = replace(
        engine.payment_record(8, records[1]),
        allocations=(AllocationRecord(invoice_number="INV-99999", amount=Decimal("5.00")),),
    )

    records_write(connection=source, records=[payment, lonely])

    invoice = Invoice.objects.get(number="INV-00000")
    snapshot = _binding(source, "payment", "PAY-00007").snapshot
    assert snapshot["allocations"] == [
        {"invoice_id": invoice.pk, "external_id": "INV-00000", "amount": str(records[0].total)}
    ]
    assert (snapshot["reference"], snapshot["status"], snapshot["amount"]) == (
        "PAY-00007",
        "completed",
        str(records[0].total),
    )
    assert snapshot["transaction_date"] == payment.transaction_date.isoformat()
    unmatched = _binding(source, "payment", "PAY-00008").snapshot["allocations"]
    assert unmatched == [{"invoice_id": None, "external_id": "", "amount": "5.00"}]


@pytest.mark.django_db
def test_a_waiting_payment_snapshot_follows_its_invoice_when_the_invoice_arrives():
    source = ConnectionFactory(platform="csv")
    invoice = engine.invoice_record(3)
    records_write(connection=source, records=[engine.payment_record(3, invoice)])
    assert _binding(source, "payment", "PAY-00003").snapshot["allocations"][0]["invoice_id"] is None

    records_write(connection=source, records=[invoice])
    records_write(connection=source, records=[engine.payment_record(3, invoice)])

    allocation = _binding(source, "payment", "PAY-00003").snapshot["allocations"][0]
    assert allocation["invoice_id"] == Invoice.objects.get(number=invoice.number).pk
    assert allocation["external_id"] == invoice.external_id


@pytest.mark.django_db
def test_a_credit_note_snapshot_has_its_remaining_credit():
    source = ConnectionFactory(platform="csv")
    line = LineRecord("Returned oil", Decimal(1), Decimal(10), Decimal(10), Decimal(2), Decimal(12))
    note = CreditNoteRecord(
        external_id="CN-1",
        number="CN-1",
        customer=engine.CUSTOMERS[0],
        issue_date=date(2026, 10, 5),
        currency="JPY",
        status="open",
        lines=(line,),
        subtotal=Decimal(10),
        tax_total=Decimal(2),
        total=Decimal(12),
        remaining_credit=Decimal(12),
    )

    records_write(connection=source, records=[note])

    assert _binding(source, "credit_note", "CN-1").snapshot == {
        "number": "CN-1",
        "currency": "JPY",
        "total": "12",
        "tax_total": "2",
        "remaining_credit": "12",
        "status": "open",
        "issue_date": "2026-10-05",
        "customer": "orders@bella.example",
    }


@pytest.mark.django_db
def test_a_deletion_keeps_what_was_known_of_the_copy_with_the_deleted_status():
    source, records = engine.source_with_invoices(2)
    records_write(connection=source, records=[engine.payment_record(1, records[0])])
    before = _binding(source, "invoice", records[0].external_id).snapshot

    deletions_record(connection=source, object_type="invoice", external_ids=[records[0].external_id])
    deletions_record(connection=source, object_type="payment", external_ids=["PAY-00001"])

    after = _binding(source, "invoice", records[0].external_id)
    assert after.snapshot == {**before, "status": "deleted"} and after.remote_deleted
    payment = _binding(source, "payment", "PAY-00001").snapshot
    assert payment["status"] == "void" and payment["allocations"][0]["external_id"] == records[0].external_id


@pytest.mark.django_db
def test_a_deletion_of_a_copy_never_snapshotted_builds_it_from_the_document():
    source, records = engine.source_with_invoices(1)
    Binding.objects.filter(connection=source).update(snapshot={}, snapshot_at=None)

    deletions_record(connection=source, object_type="invoice", external_ids=[records[0].external_id])

    snapshot = _binding(source, "invoice", records[0].external_id).snapshot
    assert (snapshot["number"], snapshot["status"], snapshot["total"]) == (
        "INV-00000",
        "deleted",
        str(records[0].total),
    )


# --- the push -----------------------------------------------------------------------------------------
def _pushed(dest, object_type: str, document) -> Binding:
    return Binding.objects.get(connection=dest, object_type=object_type, object_id=document.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_pushed_invoices_and_payments_hold_the_copy_as_the_destination_answered(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, records = engine.source_with_invoices(3)
    paid = replace(records[0], status="paid", amount_paid=records[0].total, amount_due=Decimal(0))
    records_write(connection=source, records=[paid])
    records_write(connection=source, records=[engine.payment_record(0, paid)])
    profile = engine.mapped_profile(source, dest, object_types=("invoice", "payment"), prefix="LL-")

    report = pushing.push_run(profile)

    assert (report.failed, report.blocked) == (0, 0), report
    for record in records:
        invoice = Invoice.objects.get(number=record.number)
        binding = _pushed(dest, "invoice", invoice)
        snapshot = binding.snapshot
        assert snapshot["number"] == f"LL-{record.number}"  # as written there
        assert (snapshot["currency"], snapshot["total"], snapshot["tax_total"]) == (
            "GBP",
            str(record.total),
            str(record.tax_total),
        )
        assert snapshot["issue_date"] == record.issue_date.isoformat()
        assert snapshot["customer"] == record.customer.email
        assert binding.snapshot_at is not None
    first = _pushed(dest, "invoice", Invoice.objects.get(number=records[0].number)).snapshot
    # paid at the source, created open in the destination (the payment follows): the copy says open
    assert first["status"] == "open" and first["amount_due"] == str(records[0].total)
    payment = Payment.objects.get(reference="PAY-00000")
    snapshot = _pushed(dest, "payment", payment).snapshot
    invoice = Invoice.objects.get(number=records[0].number)
    assert snapshot["allocations"] == [
        {
            "invoice_id": invoice.pk,
            "external_id": _pushed(dest, "invoice", invoice).external_id,
            "amount": str(records[0].total),
        }
    ]
    assert (snapshot["amount"], snapshot["status"]) == (str(records[0].total), "completed")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_an_update_and_a_void_rewrite_the_snapshot_of_the_copy(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, records = engine.source_with_invoices(2)
    profile = engine.mapped_profile(source, dest, prefix="LL-")
    pushing.push_run(profile)
    invoice = Invoice.objects.get(number=records[1].number)
    created = _pushed(dest, "invoice", invoice)

    line = replace(
        records[1].lines[0], unit_price=Decimal(100), subtotal=Decimal(200), tax_amount=Decimal(40)
    )
    line = replace(line, quantity=Decimal(2), total=Decimal(240))
    bigger = replace(
        records[1],
        lines=(line,),
        subtotal=Decimal(200),
        tax_total=Decimal(40),
        total=Decimal(240),
        amount_due=Decimal(240),
    )
    records_write(connection=source, records=[bigger])
    updated = pushing.push_run(profile)

    assert (updated.updated, updated.failed) == (1, 0), updated
    binding = _pushed(dest, "invoice", invoice)
    assert (binding.snapshot["total"], binding.snapshot["tax_total"]) == ("240.00", "40.00")
    assert binding.snapshot_at > created.snapshot_at

    records_write(connection=source, records=[replace(bigger, status="void")])
    voided = pushing.push_run(profile)

    assert (voided.updated, voided.failed) == (1, 0), voided
    assert _pushed(dest, "invoice", invoice).snapshot["status"] == "void"


# --- the push reads what a page needs once ---------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("count", [3, 9])
def test_preparing_a_page_of_payments_reads_their_invoices_and_customers_bindings_once(count):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from connectors.models import Connection
    from sync.models import Customer, SyncProfile

    dest = ConnectionFactory(
        platform="quickbooks",
        role=Connection.Role.DESTINATION,
        options={"realmId": "1", "home_currency": "GBP"},
    )
    source, records = engine.source_with_invoices(count)
    records_write(connection=source, records=[engine.payment_record(i, r) for i, r in enumerate(records)])
    for index, invoice in enumerate(Invoice.objects.all()):
        Binding.objects.create(
            connection=dest, object_type="invoice", object_id=invoice.pk, external_id=f"Q{index}"
        )
    for index, customer in enumerate(Customer.objects.all()):
        Binding.objects.create(
            connection=dest, object_type="customer", object_id=customer.pk, external_id=f"C{index}"
        )
    profile = SyncProfile.objects.create(
        name="to QuickBooks", source=source, destination=dest, object_types=["payment"]
    )
    pusher = pushing.Pusher(profile)
    page = list(pushing.candidates(profile, "payment"))

    with CaptureQueriesContext(connection) as queries:
        pusher.page_prefetch("payment", page)
        prepared = [pusher.prepare("payment", payment, "create", None) for payment in page]

    reads = [q["sql"] for q in queries.captured_queries if "sync_binding" in q["sql"]]
    assert len(reads) == 1, reads
    assert all(context.invoice_ids and context.customer_id.startswith("C") for _, context, _ in prepared)
