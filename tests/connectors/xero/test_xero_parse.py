"""Xero records -> canonical records: statuses, LineAmountTypes, money at the currency's places, problems."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal

import pytest

from connectors.base import ValidationError
from connectors.xero.connector import XeroConnector

from .conftest import fixture, vendor_file

D = Decimal


def invoice(number: str) -> dict:
    return next(raw for raw in fixture("invoices_page.json")["Invoices"] if raw["InvoiceNumber"] == number)


def test_an_approved_invoice_with_a_payment_is_partially_paid():
    record = XeroConnector.parse("invoice", invoice("INV-0003"))
    assert record.status == "partially_paid"
    assert (record.external_id, record.number, record.currency) == (
        "7ef31b20-de17-4312-8382-412f869b1510",
        "INV-0003",
        "NZD",
    )
    assert (record.issue_date, record.due_date) == (date(2018, 11, 2), date(2018, 11, 7))
    assert (record.subtotal, record.tax_total, record.total) == (D("100.19"), D("15.03"), D("115.22"))
    assert (record.amount_paid, record.amount_due) == (D("20.00"), D("95.22"))
    assert record.customer.name == "Barney Rubble-83203"
    assert record.customer.external_id == "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7"
    assert record.customer.email == "barney@example.com"
    assert record.memo == "PO-4100"


def test_exclusive_lines_add_tax_on_top_and_keep_four_place_unit_prices():
    first, second = XeroConnector.parse("invoice", invoice("INV-0003")).lines
    assert (first.quantity, first.unit_price, first.subtotal, first.tax_amount, first.total) == (
        D("2.0"),
        D("20.00"),
        D("40.00"),
        D("6.00"),
        D("46.00"),
    )
    assert first.item_code == "TIRE" and first.line_number == 1
    assert second.unit_price == D("40.1234")
    assert (second.subtotal, second.tax_amount, second.total) == (D("60.19"), D("9.03"), D("69.22"))
    assert second.line_number == 2


def test_inclusive_lines_hold_the_tax_inside_the_line_amount():
    record = XeroConnector.parse("invoice", invoice("INV-0005"))
    (line,) = record.lines
    assert (line.subtotal, line.tax_amount, line.total) == (D("100.00"), D("15.00"), D("115.00"))
    assert line.unit_price == D("50.00")  # 57.50 gross less its share of tax
    assert record.status == "open"
    assert record.lines_total == record.total


def test_no_tax_lines_carry_no_tax_and_yen_has_no_decimals():
    record = XeroConnector.parse("invoice", invoice("INV-0006"))
    (line,) = record.lines
    assert (line.subtotal, line.tax_amount, line.total) == (D("12000"), D("0"), D("12000"))
    assert record.total == D("12000") and record.total.as_tuple().exponent == 0
    assert record.status == "draft"
    assert record.customer.currency == "JPY"


def test_an_inclusive_line_and_its_exclusive_twin_agree_on_net_tax_and_gross():
    exclusive = copy.deepcopy(invoice("INV-0005"))
    exclusive["LineAmountTypes"] = "Exclusive"
    exclusive["LineItems"][0].update(UnitAmount=50.0, LineAmount=100.0)
    inclusive_line = XeroConnector.parse("invoice", invoice("INV-0005")).lines[0]
    exclusive_line = XeroConnector.parse("invoice", exclusive).lines[0]
    assert inclusive_line == exclusive_line


@pytest.mark.parametrize(
    ("number", "status"),
    [("INV-0002", "paid"), ("INV-0001", "void"), ("INV-0004", "deleted"), ("INV-0006", "draft")],
)
def test_xero_statuses_become_canonical_ones(number, status):
    assert XeroConnector.parse("invoice", invoice(number)).status == status


def test_submitted_is_still_a_draft_and_a_credited_invoice_is_partially_paid():
    raw = copy.deepcopy(invoice("INV-0005"))
    raw["Status"] = "SUBMITTED"
    assert XeroConnector.parse("invoice", raw).status == "draft"
    raw.update(Status="AUTHORISED", AmountCredited=15.0, AmountDue=100.0)
    assert XeroConnector.parse("invoice", raw).status == "partially_paid"


def test_an_iso_date_string_is_read_when_the_ms_json_date_is_missing():
    raw = copy.deepcopy(invoice("INV-0003"))
    del raw["Date"]
    assert XeroConnector.parse("invoice", raw).issue_date == date(2018, 11, 2)


def test_a_bill_is_not_a_sales_invoice():
    raw = copy.deepcopy(invoice("INV-0003"))
    raw["Type"] = "ACCPAY"
    with pytest.raises(ValidationError) as caught:
        XeroConnector.parse("invoice", raw)
    assert (caught.value.field, caught.value.value) == ("Type", "ACCPAY")


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"CurrencyCode": "ZZZ"}, "CurrencyCode", "ZZZ"),
        ({"Total": "lots"}, "Total", "lots"),
        ({"Total": 40.001}, "Total", 40.001),
        ({"Status": "APPROVED"}, "Status", "APPROVED"),
        ({"Date": "/Date(soon)/"}, "Date", "/Date(soon)/"),
        ({"LineAmountTypes": "Gross"}, "LineAmountTypes", "Gross"),
        ({"Contact": None}, "Contact", None),
    ],
)
def test_bad_values_are_refused_naming_the_field_and_the_raw_value(change, field, value):
    raw = {**copy.deepcopy(invoice("INV-0003")), **change}
    with pytest.raises(ValidationError) as caught:
        XeroConnector.parse("invoice", raw)
    assert (caught.value.field, caught.value.value) == (field, value)


def test_a_bad_line_amount_names_its_line():
    raw = copy.deepcopy(invoice("INV-0003"))
    raw["LineItems"][1]["LineAmount"] = 60.191
    with pytest.raises(ValidationError) as caught:
        XeroConnector.parse("invoice", raw)
    assert (caught.value.field, caught.value.value) == ("LineItems[1].LineAmount", 60.191)


def test_a_payment_is_one_allocation_to_its_invoice():
    raw = fixture("payments_page.json")["Payments"][0]
    record = XeroConnector.parse("payment", raw)
    assert (record.external_id, record.reference, record.status) == (
        "99ea7f6b-c513-4066-bc27-b7c65dcd76c2",
        "LL-PAY-77",
        "completed",
    )
    assert (record.amount, record.currency, record.transaction_date) == (
        D("46.00"),
        "NZD",
        date(2018, 11, 29),
    )
    (allocation,) = record.allocations
    assert (allocation.invoice_number, allocation.invoice_external_id, allocation.amount) == (
        "INV-0002",
        "046d8a6d-1ae1-4b4d-9340-5601bdf41b87",
        D("46.00"),
    )
    assert record.customer.name == "Barney Rubble-83203"


def test_a_deleted_payment_reads_as_void():
    assert XeroConnector.parse("payment", fixture("payments_page.json")["Payments"][1]).status == "void"


def test_a_bill_payment_is_not_a_sales_payment():
    raw = {**fixture("payments_page.json")["Payments"][0], "PaymentType": "ACCPAYPAYMENT"}
    with pytest.raises(ValidationError) as caught:
        XeroConnector.parse("payment", raw)
    assert caught.value.field == "PaymentType"


def test_a_credit_note_keeps_its_live_allocations_and_is_partially_applied():
    raw = fixture("credit_notes_page.json")["CreditNotes"][0]
    record = XeroConnector.parse("credit_note", raw)
    assert (record.number, record.status, record.total, record.remaining_credit) == (
        "CN-0005",
        "partially_applied",
        D("34.50"),
        D("24.50"),
    )
    (allocation,) = record.allocations  # the deleted one is gone
    assert (allocation.invoice_number, allocation.amount, allocation.allocated_on) == (
        "INV-0009",
        D("10.00"),
        date(2019, 3, 6),
    )
    assert allocation.invoice_external_id == "c45720a1-ade3-4a38-a064-d15489be6841"
    assert record.lines[0].total == D("34.50")


def test_a_fully_used_credit_note_is_applied():
    assert (
        XeroConnector.parse("credit_note", fixture("credit_notes_page.json")["CreditNotes"][1]).status
        == "applied"
    )


def test_a_supplier_credit_note_is_not_a_sales_credit_note():
    raw = {**fixture("credit_notes_page.json")["CreditNotes"][0], "Type": "ACCPAYCREDIT"}
    with pytest.raises(ValidationError):
        XeroConnector.parse("credit_note", raw)


def test_a_contact_becomes_a_customer():
    active, archived = fixture("contacts_page.json")["Contacts"]
    record = XeroConnector.parse("customer", active)
    assert (record.name, record.email, record.tax_number, record.currency, record.external_id) == (
        "Katherine Warren",
        "kat.warren@clampett.example",
        "GB123456789",
        "GBP",
        "5cc8cf28-567e-4d43-b287-687cfcaec47c",
    )
    assert XeroConnector.parse("customer", archived).name == "Lisa Parker"


def test_unknown_object_types_and_non_objects_are_validation_errors():
    with pytest.raises(ValidationError):
        XeroConnector.parse("payout", {})
    with pytest.raises(ValidationError):
        XeroConnector.parse("invoice", ["not", "an", "object"])
    with pytest.raises(ValidationError):
        XeroConnector.parse("invoice", {**invoice("INV-0003"), "LineItems": {"0": {}}})


def _spec_examples(spec, path: str, method: str, collection: str) -> list[dict]:
    content = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    return content["example"][collection]


def test_every_sales_invoice_in_the_official_examples_parses(accounting_spec):
    vendor_file("xero_accounting.yaml")
    examples = _spec_examples(accounting_spec, "/Invoices", "get", "Invoices")
    examples += _spec_examples(accounting_spec, "/Invoices/{InvoiceID}", "get", "Invoices")
    parsed = [XeroConnector.parse("invoice", raw) for raw in examples if raw["Type"] == "ACCREC"]
    assert [record.status for record in parsed] == ["void", "paid", "open", "paid"]
    assert parsed[1].total == D("46.00") and parsed[3].amount_paid == D("148062.76")


def test_the_official_payment_and_credit_note_examples_parse(accounting_spec):
    payments = _spec_examples(accounting_spec, "/Payments", "get", "Payments")
    record = XeroConnector.parse("payment", payments[0])
    assert (record.amount, record.allocations[0].invoice_number) == (D("46.00"), "INV-0002")
    notes = _spec_examples(accounting_spec, "/CreditNotes/{CreditNoteID}", "get", "CreditNotes")
    note = XeroConnector.parse("credit_note", notes[0])
    assert (note.status, note.remaining_credit, note.total) == ("partially_applied", D("32.50"), D("34.50"))
