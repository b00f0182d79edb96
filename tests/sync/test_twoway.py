"""Two-way profiles over HTTP: a Stripe source, a QuickBooks or Xero destination (the sandboxes), and a
payment recorded by hand in the books that must reach Stripe once, whatever crashes when."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from connectors.base import AllocationRecord, PaymentRecord, PushContext
from connectors.models import Connection
from reconciliation.models import ReconciliationException
from sandbox.models import SandboxHit
from sync import jobs
from sync import push as pushing
from sync.models import Binding, Invoice, Payment, PushOperation, SyncJob
from tests.factories import ConnectionFactory
from tests.sync import engine

pytestmark = pytest.mark.django_db(transaction=True)
STRIPE_KEY = "sk_test_twoway_suite"


class WorkerKilled(BaseException):
    pass


def stripe_source(server_url: str) -> Connection:
    return ConnectionFactory(
        name="Stripe shop",
        platform="stripe",
        role=Connection.Role.SOURCE,
        base_url=f"{server_url}/sandbox/stripe/v1",
        credentials={"api_key": STRIPE_KEY},
    )


def stripe_invoice(source: Connection, quantity: int = 2) -> dict:
    """An open invoice at Stripe, issued the way a shop does: 2 x 40.00 GBP = 80.00."""
    client = source.connector().client
    customer = client.post(
        "customers", {"name": "Trattoria Bella", "email": "orders@bella.example"}, idempotency_key="cus-1"
    )
    invoice = client.post(
        "invoices",
        {
            "customer": customer["id"],
            "currency": "gbp",
            "collection_method": "send_invoice",
            "days_until_due": 30,
        },
        idempotency_key="inv-1",
    )
    client.post(
        "invoiceitems",
        {
            "customer": customer["id"],
            "invoice": invoice["id"],
            "quantity": quantity,
            "unit_amount_decimal": "4000",
            "description": "Olive oil 5L",
        },
        idempotency_key="item-1",
    )
    return client.post(f"invoices/{invoice['id']}/finalize", {}, idempotency_key="fin-1")


def run(profile) -> SyncJob:
    """A sync job of the profile, run to its end."""
    job = SyncJob.objects.create(kind=SyncJob.Kind.SYNC, profile=profile, connection=profile.source)
    jobs.job_run(job.pk)
    job.refresh_from_db()
    return job


def pay_in_books(dest: Connection, amount: Decimal, reference: str = "BACS 4471") -> None:
    """The accountant records the customer's bank transfer in the books, against our invoice there."""
    binding = Binding.objects.get(connection=dest, object_type="invoice")
    connector = dest.connector()
    customer = connector.fetch("invoice", binding.external_id).record.customer.external_id
    record = PaymentRecord(
        external_id="",
        reference=reference,
        customer=None,
        transaction_date=date.today(),
        currency="GBP",
        amount=amount,
        allocations=(
            AllocationRecord(invoice_number="X", amount=amount, invoice_external_id=binding.external_id),
        ),
        method="bank_transfer",
    )
    context = PushContext(
        reference=reference,
        customer_id=customer,
        deposit_account="090",
        invoice_ids={"X": binding.external_id},
    )
    connector.record_payment(record, context, idempotency_key=f"by-hand-{reference}")


def pays(invoice_id: str) -> int:
    """Requests that paid the Stripe invoice (out of band or not)."""
    return SandboxHit.objects.filter(
        platform="stripe", path__endswith=f"{invoice_id}/pay", status=200
    ).count()


def stripe_status(source: Connection, invoice_id: str) -> dict:
    return source.connector().client.get(f"invoices/{invoice_id}")


def two_way(platform: str, server_url: str, *, direction: str = "two_way"):
    dest = engine.destination(platform, server_url)
    source = stripe_source(server_url)
    invoice = stripe_invoice(source)
    profile = engine.mapped_profile(source, dest, object_types=("invoice", "payment"), direction=direction)
    first = run(profile)
    assert first.state == "succeeded", first.error
    assert Binding.objects.filter(connection=dest, object_type="invoice").count() == 1
    return profile, source, dest, invoice


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_a_payment_recorded_in_the_books_pays_the_stripe_invoice_once(live_server, platform):
    profile, source, dest, invoice = two_way(platform, live_server.url)
    pay_in_books(dest, Decimal("80.00"))

    job = run(profile)

    assert job.state == "succeeded", job.error
    paid = stripe_status(source, invoice["id"])
    assert (paid["status"], paid["amount_remaining"]) == ("paid", 0)
    assert pays(invoice["id"]) == 1
    assert not source.connector().client.list_page("invoice_payments", {"invoice": invoice["id"]})[0]
    payment = Payment.objects.get(source_connection=dest)
    assert (payment.amount, payment.status) == (Decimal("80.00"), "completed")
    assert [a.invoice.number for a in payment.allocations.all()] == [invoice["number"]]
    origin = Binding.objects.get(connection=dest, object_type="payment", object_id=payment.pk)
    assert origin.is_origin and payment.raw_payload  # lineage: where it came from, as it came
    at_source = Binding.objects.get(connection=source, object_type="payment", object_id=payment.pk)
    assert at_source.external_id == invoice["id"] and not at_source.is_origin

    again = run(profile)  # Stripe now says paid: pulled, and nothing goes anywhere twice

    assert again.state == "succeeded", again.error
    assert pays(invoice["id"]) == 1
    assert Payment.objects.filter(source_connection=dest).count() == 1
    assert PushOperation.objects.filter(connection=source).count() == 1
    assert Invoice.objects.get(number=invoice["number"]).status == "paid"
    assert not ReconciliationException.objects.filter(state="open").exists()
    # never echoed: the payment is not pushed to the books it came from
    assert not PushOperation.objects.filter(connection=dest, object_type="payment").exists()
    kind, field = ("Payment", "PaymentRefNum") if platform == "quickbooks" else ("payment", "Reference")
    references = [r.get(field) or "" for r in engine.live_records(platform, kind)]
    assert references.count("BACS 4471") == 1
    assert not [r for r in references if r.startswith("LL")]
    # the books' own payments against other invoices stay theirs
    assert len(references) > 1 and Payment.objects.count() == 1


@pytest.mark.parametrize("point", ["before_request", "after_write", "after_commit"])
def test_a_crash_on_the_way_back_still_pays_the_stripe_invoice_once(live_server, point):
    profile, source, dest, invoice = two_way("quickbooks", live_server.url)
    pay_in_books(dest, Decimal("80.00"))

    def kill(name: str, operation: PushOperation) -> None:
        if name == point and operation.connection_id == source.pk:
            raise WorkerKilled(name)

    pushing.common.CRASH_HOOK = kill
    try:
        with pytest.raises(WorkerKilled):
            run(profile)
    finally:
        pushing.common.CRASH_HOOK = None
    # the worker is gone; the reaper hands its job to another one once the lease runs out
    killed = SyncJob.objects.get(state="running")
    SyncJob.objects.filter(pk=killed.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    jobs.job_run(killed.pk)
    run(profile)

    assert stripe_status(source, invoice["id"])["status"] == "paid"
    assert pays(invoice["id"]) == 1
    assert Binding.objects.filter(connection=source, object_type="payment").count() == 1
    assert not PushOperation.objects.filter(state__in=["in_flight", "uncertain", "failed"]).exists()


def test_a_one_way_profile_sends_nothing_back(live_server):
    profile, source, dest, invoice = two_way("quickbooks", live_server.url, direction="one_way")
    pay_in_books(dest, Decimal("80.00"))

    job = run(profile)

    assert job.state == "succeeded", job.error
    assert stripe_status(source, invoice["id"])["status"] == "open"
    assert pays(invoice["id"]) == 0
    assert not Payment.objects.filter(source_connection=dest).exists()
    assert not PushOperation.objects.filter(connection=source).exists()


def test_a_partial_payment_stays_partial_and_stripe_refusing_it_is_an_exception(live_server):
    profile, source, dest, invoice = two_way("quickbooks", live_server.url)
    pay_in_books(dest, Decimal("40.00"))

    job = run(profile)

    assert job.state == "partial"
    payment = Payment.objects.get(source_connection=dest)
    assert payment.amount == Decimal("40.00")
    assert [a.amount for a in payment.allocations.all()] == [Decimal("40.00")]
    assert stripe_status(source, invoice["id"])["status"] == "open"
    assert pays(invoice["id"]) == 0
    failure = ReconciliationException.objects.get(kind="sync_failure", state="open")
    assert invoice["number"] in failure.title and "still unpaid" in failure.title
    assert "whole invoice" in failure.message


def test_a_source_that_cannot_record_payments_gets_an_exception(live_server, monkeypatch):
    from connectors.stripe.connector import StripeConnector

    profile, _, dest, invoice = two_way("quickbooks", live_server.url)
    capabilities = {**StripeConnector.capabilities, "payment": frozenset({"read", "list_changes"})}
    monkeypatch.setattr(StripeConnector, "capabilities", capabilities)
    pay_in_books(dest, Decimal("80.00"))

    job = run(profile)

    assert job.state == "partial"
    failure = ReconciliationException.objects.get(kind="sync_failure", state="open")
    assert "cannot record payments" in failure.message
    assert pays(invoice["id"]) == 0


def test_the_dry_run_shows_the_payment_going_back_and_sends_nothing(live_server, client):
    from sync import twoway
    from sync.preview import profile_preview

    profile, source, dest, invoice = two_way("xero", live_server.url)
    pay_in_books(dest, Decimal("80.00"))
    twoway.payments_pull_back(profile, None, pushing.PushReport(), None)  # what the next run reads first
    operations = PushOperation.objects.count()

    (item,) = [i for i in profile_preview(profile) if i.operation.startswith("record at")]

    payment = Payment.objects.get(source_connection=dest)
    assert (item.object_type, item.object_id, item.problems) == ("payment", payment.pk, [])
    assert item.operation == f"record at {source}"
    assert item.payload["invoice_ids"] == {invoice["number"]: invoice["id"]}
    assert Decimal(item.payload["payment"]["amount"]) == Decimal("80.00")
    assert PushOperation.objects.count() == operations and pays(invoice["id"]) == 0

    job = run(profile)  # the real run sends it, once; afterwards the dry run has nothing to send back
    assert job.state == "succeeded" and pays(invoice["id"]) == 1
    assert not [i for i in profile_preview(profile) if i.operation.startswith("record at")]
