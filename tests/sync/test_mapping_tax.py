"""Taxed lines are never pushed untaxed: the mapping holds back a line that carries tax without a rate, and a
taxed Stripe invoice reaches the books with its tax code and its full total."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.base import LineRecord
from connectors.models import Connection
from connectors.stripe.connector import StripeConnector
from reconciliation.models import ReconciliationException
from sync import jobs
from sync import push as pushing
from sync.mapping import MappingTable, line_context, tax_key
from sync.models import Binding, Invoice, MappingRow, PushOperation, SyncJob
from sync.services import records_write
from tests.factories import ConnectionFactory
from tests.sync import engine

STRIPE_FIXTURES = Path(__file__).resolve().parents[1] / "connectors" / "stripe" / "fixtures"
QUICKBOOKS = {"item": "required", "tax_code": "taxed"}


def line(tax: str, rate: str | None, *, subtotal: str = "80.00") -> LineRecord:
    net, tax_amount = Decimal(subtotal), Decimal(tax)
    return LineRecord(
        "Olive oil 5L",
        Decimal(2),
        net / 2,
        net,
        tax_amount,
        net + tax_amount,
        tax_rate=Decimal(rate) if rate is not None else None,
        item_code="OIL-5L",
    )


def table(**tax_codes: str) -> MappingTable:
    return MappingTable(
        rows={"item": {"*": "11"}, "tax_code": {"20": "2", "0": "3", **tax_codes}},
        line_rules=QUICKBOOKS,
    )


# --- the mapping, pure ----------------------------------------------------------------------------------
def test_a_line_with_tax_and_no_rate_is_held_back_naming_the_line_and_the_tax():
    mapped, problems = line_context([line("16.00", "20"), line("16.0000", None)], table())

    assert mapped[0] == {"item": "11", "tax_code": "2"}
    (problem,) = problems
    assert (problem.kind, problem.value, problem.where) == ("tax_rate", "none", "line 2")
    assert "line 2 carries tax 16.00 but no tax rate" in problem.message
    assert "sent tax without a rate" in problem.message and "untaxed" in problem.message


@pytest.mark.parametrize("fallback", ["none", "*"])
def test_no_untaxed_or_default_tax_code_row_lets_a_taxed_line_through_without_a_rate(fallback):
    _, problems = line_context([line("16.00", None)], table(**{fallback: "4"}))

    assert [problem.kind for problem in problems] == ["tax_rate"]


def test_a_line_without_tax_and_without_a_rate_still_goes_untaxed():
    mapped, problems = line_context([line("0.00", None)], table())

    assert (mapped, problems) == (({"item": "11"},), [])


def test_a_credit_line_with_negative_tax_and_no_rate_is_held_back_too():
    _, problems = line_context([line("-16.00", None, subtotal="-80.00")], table())

    assert "carries tax -16.00" in problems[0].message


def test_a_destination_that_takes_no_tax_codes_gets_the_line_as_it_is():
    mapped, problems = line_context(
        [line("16.00", None)], MappingTable(rows={"item": {"*": "11"}}, line_rules={"item": "required"})
    )

    assert (mapped, problems) == (({"item": "11"},), [])


def test_a_combined_rate_maps_like_any_other():
    mapped, problems = line_context([line("9.60", "12")], table(**{"12": "7"}))

    assert (tax_key(Decimal("12.0000")), mapped, problems) == ("12", ({"item": "11", "tax_code": "7"},), [])


# --- over HTTP, through the sandboxes ---------------------------------------------------------------------
def stripe_source(server_url: str) -> Connection:
    return ConnectionFactory(
        name="Stripe shop",
        platform="stripe",
        role=Connection.Role.SOURCE,
        base_url=f"{server_url}/sandbox/stripe/v1",
        credentials={"api_key": "sk_test_tax_suite"},
    )


def stripe_vat_invoice(source: Connection) -> dict:
    """An open invoice at Stripe: 2 x 40.00 GBP with 20% VAT, 96.00 in all."""
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
            "quantity": 2,
            "unit_amount_decimal": "4000",
            "description": "Olive oil 5L",
            "tax_rates": ["txr_sbx_gb_vat20"],
        },
        idempotency_key="item-1",
    )
    return client.post(f"invoices/{invoice['id']}/finalize", {}, idempotency_key="fin-1")


def run(profile) -> SyncJob:
    job = SyncJob.objects.create(kind=SyncJob.Kind.SYNC, profile=profile, connection=profile.source)
    jobs.job_run(job.pk)
    job.refresh_from_db()
    return job


def books_invoice(platform: str, number: str) -> tuple[Decimal, list[str]]:
    """(total, tax code of each line) of the invoice the books hold under `number`."""
    if platform == "quickbooks":
        (found,) = [r for r in engine.live_records(platform, "Invoice") if r.get("DocNumber") == number]
        sales = [line["SalesItemLineDetail"] for line in found["Line"] if "SalesItemLineDetail" in line]
        codes = [detail.get("TaxCodeRef", {}).get("value", "") for detail in sales]
        return Decimal(str(found["TotalAmt"])), codes
    (found,) = [r for r in engine.live_records(platform, "invoice") if r.get("InvoiceNumber") == number]
    return Decimal(found["Total"]), [line.get("TaxType", "") for line in found["LineItems"]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("platform", "code"), [("quickbooks", "2"), ("xero", "OUTPUT2")])
def test_a_stripe_invoice_with_vat_reaches_the_books_taxed_at_its_full_total(live_server, platform, code):
    dest = engine.destination(platform, live_server.url)
    source = stripe_source(live_server.url)
    at_stripe = stripe_vat_invoice(source)
    assert at_stripe["total"] == 9600
    profile = engine.mapped_profile(source, dest)

    job = run(profile)

    assert job.state == "succeeded", job.error
    invoice = Invoice.objects.get(number=at_stripe["number"])
    assert [(row.tax_amount, row.tax_rate) for row in invoice.lines.all()] == [
        (Decimal("16.00"), Decimal(20))
    ]
    operation = PushOperation.objects.get(connection=dest, object_type="invoice")
    assert operation.state == "succeeded", operation.error
    assert books_invoice(platform, operation.reference) == (Decimal("96.00"), [code])
    assert not ReconciliationException.objects.filter(kind="mapping_missing").exists()


@pytest.mark.django_db(transaction=True)
def test_an_inclusive_stripe_line_reaches_the_books_net_with_its_tax_code(live_server):
    dest = engine.destination("quickbooks", live_server.url)
    source = ConnectionFactory(name="Stripe shop", platform="stripe", role=Connection.Role.SOURCE)
    raw = json.loads((STRIPE_FIXTURES / "invoice_gbp_vat_inclusive.json").read_text())
    record = StripeConnector.parse("invoice", raw)
    oil = record.lines[0]  # 96.00 with 20% VAT inside
    record = dataclasses.replace(
        record,
        lines=(oil,),
        subtotal=oil.subtotal,
        tax_total=oil.tax_amount,
        total=oil.total,
        amount_due=oil.total,
    )
    records_write(connection=source, records=[record])
    profile = engine.mapped_profile(source, dest)

    report = pushing.push_run(profile)

    assert (report.failed, report.blocked) == (0, 0), report
    operation = PushOperation.objects.get(connection=dest, object_type="invoice")
    (sent,) = operation.payload["Line"]
    # the net amount goes, with the tax code that puts the 20% back on top
    assert (sent["Amount"], sent["SalesItemLineDetail"]["TaxCodeRef"]) == (80, {"value": "2"})
    assert books_invoice("quickbooks", operation.reference) == (Decimal("96.00"), ["2"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_an_invoice_with_tax_but_no_rate_waits_and_the_rest_of_the_batch_goes(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source, _ = engine.source_with_invoices(2)
    unrated = engine.invoice_record(7, number="INV-UNRATED")
    unrated = dataclasses.replace(unrated, lines=(dataclasses.replace(unrated.lines[0], tax_rate=None),))
    records_write(connection=source, records=[unrated])
    profile = engine.mapped_profile(source, dest)
    # even a catch-all tax code must not take a taxed line that has no rate
    MappingRow.objects.create(
        mapping_set=profile.mapping_set,
        kind="tax_code",
        source_value="*",
        target_value="3" if platform == "quickbooks" else "ZERORATEDOUTPUT",
    )

    report = pushing.push_run(profile)

    assert (report.blocked, report.failed) == (1, 0), report
    assert Binding.objects.filter(connection=dest, object_type="invoice").count() == 2
    exception = ReconciliationException.objects.get(kind="mapping_missing")
    tax = unrated.lines[0].tax_amount
    assert f"Invoice INV-UNRATED is waiting: line 1 carries tax {tax} but no tax rate" in exception.title
    assert exception.details["problems"][0]["kind"] == "tax_rate"
    assert "Correct the rate at the source" in exception.message
    assert "Add the mapping" not in exception.message
    assert exception.amount_at_risk == unrated.total
    kind, field = ("Invoice", "DocNumber") if platform == "quickbooks" else ("invoice", "InvoiceNumber")
    assert not [r for r in engine.live_records(platform, kind) if "UNRATED" in str(r.get(field))]

    # the source corrects the line's rate: the next run sends it, taxed
    records_write(connection=source, records=[engine.invoice_record(7, number="INV-UNRATED")])
    second = pushing.push_run(profile)

    assert (second.created, second.blocked) == (1, 0), second
    exception.refresh_from_db()
    assert exception.state == "resolved"
