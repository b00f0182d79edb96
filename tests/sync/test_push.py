"""Pushing canonical documents to the QuickBooks and Xero sandboxes over HTTP, through the outbox."""

from __future__ import annotations

import pytest

from reconciliation.models import ReconciliationException
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
