"""Canonical records -> the exact bodies Xero is sent, checked against the official request schemas."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connectors.base import (
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    PushContext,
    ValidationError,
)
from connectors.xero.connector import XeroConnector

D = Decimal
CONTACT_ID = "430fa14a-f945-44d3-9f97-5df5e28441b8"
INVOICE_ID = "c45720a1-ade3-4a38-a064-d15489be6841"
OTHER_INVOICE_ID = "7ef31b20-de17-4312-8382-412f869b1510"
CUSTOMER = CustomerRecord(name="Liam Gallagher", email="liam@example.com", tax_number="GB1", currency="GBP")


def line(quantity="2", unit="20.00", subtotal="40.00", tax="8.00", number=1, description="Acme Tires"):
    return LineRecord(
        description=description,
        quantity=D(quantity),
        unit_price=D(unit),
        subtotal=D(subtotal),
        tax_amount=D(tax),
        total=D(subtotal) + D(tax),
        tax_rate=D(20),
        line_number=number,
    )


def make_invoice(lines=None, currency="GBP", status="open", **changes):
    lines = tuple(lines or (line(),))
    fields = {
        "external_id": "shop-1001",
        "number": "1001",
        "customer": CUSTOMER,
        "issue_date": date(2026, 3, 1),
        "due_date": date(2026, 3, 31),
        "currency": currency,
        "status": status,
        "lines": lines,
        "subtotal": sum((x.subtotal for x in lines), D(0)),
        "tax_total": sum((x.tax_amount for x in lines), D(0)),
        "total": sum((x.total for x in lines), D(0)),
        "amount_paid": D(0),
        "amount_due": sum((x.total for x in lines), D(0)),
        "memo": "Spring order",
    }
    fields.update(changes)
    return InvoiceRecord(**fields)


CONTEXT = PushContext(
    reference="LL-INV-1001",
    number="SHOP-1001",
    customer_id=CONTACT_ID,
    lines=({"account": "200", "tax_code": "OUTPUT2", "item": "TIRE"},),
    deposit_account="090",
    invoice_ids={"1001": INVOICE_ID, "1002": OTHER_INVOICE_ID},
)


def test_an_invoice_renders_as_an_approved_sales_invoice(request_validator):
    payload = XeroConnector.render("invoice", make_invoice(), CONTEXT)
    assert payload == {
        "Type": "ACCREC",
        "Contact": {"ContactID": CONTACT_ID},
        "InvoiceNumber": "SHOP-1001",
        "Reference": "LL-INV-1001",
        "Date": "2026-03-01",
        "DueDate": "2026-03-31",
        "CurrencyCode": "GBP",
        "LineAmountTypes": "Exclusive",
        "Status": "AUTHORISED",
        "LineItems": [
            {
                "Description": "Acme Tires",
                "Quantity": 2,
                "UnitAmount": 20,
                "LineAmount": 40,
                "TaxAmount": 8,
                "AccountCode": "200",
                "TaxType": "OUTPUT2",
                "ItemCode": "TIRE",
            }
        ],
    }
    request_validator("Invoices", {"Invoices": [payload]})


def test_a_draft_stays_a_draft_and_a_void_invoice_cannot_be_created():
    assert XeroConnector.render("invoice", make_invoice(status="draft"), CONTEXT)["Status"] == "DRAFT"
    with pytest.raises(ValidationError) as caught:
        XeroConnector.render("invoice", make_invoice(status="void"), CONTEXT)
    assert caught.value.field == "status"


def test_amounts_are_json_numbers_at_the_currencys_places(request_validator):
    yen = make_invoice(currency="JPY", lines=[line(quantity="3", unit="4000", subtotal="12000", tax="1200")])
    dinar = make_invoice(
        currency="KWD", lines=[line(quantity="1", unit="12.345", subtotal="12.345", tax="0.617")]
    )
    pounds = make_invoice(lines=[line(quantity="1.5", unit="40.1234", subtotal="60.19", tax="12.04")])
    rendered = [XeroConnector.render("invoice", record, CONTEXT) for record in (yen, dinar, pounds)]
    assert (rendered[0]["LineItems"][0]["LineAmount"], rendered[0]["LineItems"][0]["TaxAmount"]) == (
        12000,
        1200,
    )
    assert (rendered[1]["LineItems"][0]["UnitAmount"], rendered[1]["LineItems"][0]["TaxAmount"]) == (
        12.345,
        0.617,
    )
    assert rendered[2]["LineItems"][0]["UnitAmount"] == 40.1234
    for payload in rendered:
        request_validator("Invoices", {"Invoices": [payload]})


def test_a_line_whose_total_is_not_quantity_times_price_sends_its_amount_alone():
    discounted = line(quantity="3", unit="10.00", subtotal="27.00", tax="5.40")
    item = XeroConnector.render("invoice", make_invoice(lines=[discounted]), CONTEXT)["LineItems"][0]
    assert "UnitAmount" not in item
    assert (item["Quantity"], item["LineAmount"]) == (3, 27)


def test_without_a_contact_id_the_customer_goes_by_name_and_without_a_number_xero_numbers_it():
    context = PushContext(reference="LL-INV-1001")
    payload = XeroConnector.render("invoice", make_invoice(), context)
    assert payload["Contact"] == {"Name": "Liam Gallagher"}
    assert "InvoiceNumber" not in payload
    assert "AccountCode" not in payload["LineItems"][0]


def test_the_memo_is_the_reference_when_there_is_no_deterministic_one():
    assert XeroConnector.render("invoice", make_invoice(), PushContext())["Reference"] == "Spring order"


def test_a_credit_note_renders_as_a_sales_credit(request_validator):
    note = CreditNoteRecord(
        external_id="shop-cn-7",
        number="CN7",
        customer=CUSTOMER,
        issue_date=date(2026, 3, 5),
        currency="GBP",
        status="open",
        lines=(line(quantity="1", unit="20.00", subtotal="20.00", tax="4.00"),),
        subtotal=D("20.00"),
        tax_total=D("4.00"),
        total=D("24.00"),
        remaining_credit=D("24.00"),
        allocations=(
            AllocationRecord(invoice_number="1001", amount=D("12.00"), allocated_on=date(2026, 3, 6)),
        ),
    )
    context = PushContext(
        reference="LL-CN-7", number="SHOP-CN7", customer_id=CONTACT_ID, invoice_ids={"1001": INVOICE_ID}
    )
    payload = XeroConnector.render("credit_note", note, context)
    assert payload["Type"] == "ACCRECCREDIT"
    assert payload["CreditNoteNumber"] == "SHOP-CN7"
    assert "DueDate" not in payload and "Allocations" not in payload
    allocations = XeroConnector.render_allocations(note, context)
    assert allocations == {
        "Allocations": [{"Invoice": {"InvoiceID": INVOICE_ID}, "Amount": 12, "Date": "2026-03-06"}]
    }
    request_validator("CreditNotes", {"CreditNotes": [payload]})
    request_validator("Allocations", allocations)


def test_a_contact_carries_the_reference_in_its_contact_number(request_validator):
    payload = XeroConnector.render("customer", CUSTOMER, PushContext(reference="LL-CUST-9"))
    assert payload == {
        "Name": "Liam Gallagher",
        "ContactNumber": "LL-CUST-9",
        "EmailAddress": "liam@example.com",
        "TaxNumber": "GB1",
        "DefaultCurrency": "GBP",
    }
    with pytest.raises(ValidationError):
        XeroConnector.render("customer", CustomerRecord(name=""), PushContext())
    request_validator("Contacts", {"Contacts": [payload]})


def payment(*allocations):
    return PaymentRecord(
        external_id="ch_1",
        reference="ch_1",
        customer=CUSTOMER,
        transaction_date=date(2026, 3, 12),
        currency="GBP",
        amount=sum((a.amount for a in allocations), D(0)),
        allocations=allocations,
    )


def test_a_payment_is_one_xero_payment_per_allocated_invoice(request_validator):
    body = XeroConnector.render(
        "payment",
        payment(AllocationRecord("1001", D("40.00")), AllocationRecord("1002", D("8.50"))),
        PushContext(reference="LL-PAY-1", deposit_account="090", invoice_ids=CONTEXT.invoice_ids),
    )
    assert body == {
        "Payments": [
            {
                "Invoice": {"InvoiceID": INVOICE_ID},
                "Account": {"Code": "090"},
                "Date": "2026-03-12",
                "Amount": 40,
                "Reference": "LL-PAY-1",
            },
            {
                "Invoice": {"InvoiceID": OTHER_INVOICE_ID},
                "Account": {"Code": "090"},
                "Date": "2026-03-12",
                "Amount": 8.5,
                "Reference": "LL-PAY-1",
            },
        ]
    }
    request_validator("Payments", body)


@pytest.mark.parametrize(
    ("record", "context", "field"),
    [
        (payment(), PushContext(deposit_account="090"), "allocations"),
        (
            payment(AllocationRecord("1001", D(1))),
            PushContext(invoice_ids={"1001": INVOICE_ID}),
            "deposit_account",
        ),
        (payment(AllocationRecord("9999", D(1))), PushContext(deposit_account="090"), "invoice_ids"),
    ],
)
def test_a_payment_xero_could_not_place_is_refused_before_sending(record, context, field):
    with pytest.raises(ValidationError) as caught:
        XeroConnector.render("payment", record, context)
    assert caught.value.field == field


def test_render_refuses_what_xero_cannot_create():
    with pytest.raises(ValidationError):
        XeroConnector.render("payout", object(), PushContext())
