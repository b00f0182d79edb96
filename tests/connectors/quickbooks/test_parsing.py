"""QuickBooks records -> canonical records: statuses, tax on lines, currencies, payments' allocations."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal

import pytest

from connectors.base import CreditNoteRecord, InvoiceRecord, PaymentRecord, ValidationError
from connectors.quickbooks.connector import QuickBooksConnector
from connectors.quickbooks.parsing import allocate
from tests.connectors.quickbooks.conftest import fixture

parse = QuickBooksConnector.parse


def invoice(**changes):
    raw = copy.deepcopy(fixture("invoice.json")["Invoice"])
    raw.update(changes)
    return raw


def test_an_invoice_in_its_api_envelope_parses_to_the_canonical_record():
    record = parse("invoice", fixture("invoice.json"))
    assert isinstance(record, InvoiceRecord)
    assert (record.external_id, record.number, record.currency) == ("239", "1070", "USD")
    assert (record.issue_date, record.due_date) == (date(2025, 7, 24), date(2025, 8, 23))
    assert (record.customer.external_id, record.customer.name) == ("1", "Amy's Bird Sanctuary")
    assert record.customer.email == "birds@intuit.com"
    assert (record.total, record.amount_due, record.amount_paid) == (Decimal("150.00"), Decimal("150.00"), 0)
    assert str(record.total) == "150.00"  # at the currency's exponent


def test_the_sub_total_line_is_dropped_and_item_lines_keep_quantity_and_price():
    (line,) = parse("invoice", fixture("invoice.json")).lines
    assert (line.description, line.quantity, line.unit_price) == ("Weekly gardening", 2, Decimal("75.00"))
    assert (line.subtotal, line.tax_amount, line.total, line.item_code) == (150, 0, 150, "Services")


@pytest.mark.parametrize(
    ("total", "balance", "note", "status"),
    [
        (150, 150, "", "open"),
        (150, 50, "", "partially_paid"),
        (150, 0, "", "paid"),
        (0, 0, "Voided - entered twice", "void"),
        (0, 0, "", "paid"),  # nothing was ever owed; only the "Voided" note marks a void
    ],
)
def test_invoice_status_is_derived_from_total_balance_and_the_void_note(total, balance, note, status):
    raw = invoice(TotalAmt=total, Balance=balance, PrivateNote=note)
    assert parse("invoice", raw).status == status


def test_the_voided_invoice_fixture_is_void_with_zero_amounts():
    record = parse("invoice", fixture("invoice_voided.json"))
    assert record.status == "void"
    assert (record.total, record.amount_due, record.lines_total) == (0, 0, 0)
    assert record.memo == "Voided - entered twice"


def test_a_foreign_currency_invoice_keeps_its_currency_and_amounts_in_it():
    record = parse("invoice", fixture("invoice_multicurrency.json"))
    assert record.currency == "EUR"
    assert (record.subtotal, record.tax_total, record.total) == (
        Decimal("127.45"),
        Decimal("21.49"),
        Decimal("148.94"),
    )
    assert (record.amount_paid, record.amount_due, record.status) == (
        Decimal("100.00"),
        Decimal("48.94"),
        "partially_paid",
    )


def test_tax_goes_to_the_lines_of_the_tax_code_it_was_charged_on():
    lines = parse("invoice", fixture("invoice_multicurrency.json")).lines
    assert [(line.tax_amount, line.tax_rate) for line in lines] == [
        (Decimal("19.50"), Decimal(20)),
        (Decimal("0.00"), Decimal(0)),
        (Decimal("1.99"), Decimal(20)),
    ]


def test_lines_add_up_to_the_stated_total_so_imports_see_no_mismatch():
    for name in ("invoice.json", "invoice_multicurrency.json", "invoice_voided.json"):
        record = parse("invoice", fixture(name))
        assert record.lines_total == record.total, name


def test_tax_without_tax_line_detail_is_spread_over_taxable_lines_by_amount():
    raw = invoice(TotalAmt=132.0, Balance=132.0, TxnTaxDetail={"TotalTax": 16.0})
    taxed = {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 70, "TaxCodeRef": {"value": "TAX"}}
    free = {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 30, "TaxCodeRef": {"value": "NON"}}
    other = {"ItemRef": {"value": "3"}, "Qty": 1, "UnitPrice": 30, "TaxCodeRef": {"value": "TAX"}}
    raw["Line"] = [
        {"Amount": 70.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": taxed},
        {"Amount": 30.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": free},
        {"Amount": 30.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": other},
        {"Amount": 14.0, "DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": False}},
    ]
    record = parse("invoice", raw)
    assert [line.tax_amount for line in record.lines] == [Decimal("11.20"), 0, Decimal("4.80"), 0]
    assert record.lines[3].subtotal == Decimal("-14.00")
    assert record.lines_total == record.total == Decimal("132.00")


def test_allocation_splits_to_the_minor_unit_and_always_adds_up():
    parts = allocate(Decimal("10.00"), [Decimal(1), Decimal(1), Decimal(1)], "USD")
    assert sum(parts) == Decimal("10.00") and sorted(parts) == [
        Decimal("3.33"),
        Decimal("3.33"),
        Decimal("3.34"),
    ]
    assert allocate(Decimal(100), [Decimal(1)] * 3, "JPY") == [Decimal(34), Decimal(33), Decimal(33)]


def test_zero_decimal_currencies_parse_at_their_own_exponent():
    raw = invoice(CurrencyRef={"value": "JPY"}, TotalAmt=15000, Balance=15000)
    raw["Line"][0].update(Amount=15000)
    raw["Line"][0]["SalesItemLineDetail"].update(Qty=2, UnitPrice=7500)
    record = parse("invoice", raw)
    assert (str(record.total), str(record.lines[0].unit_price)) == ("15000", "7500")


def test_without_currency_ref_the_home_currency_is_used_and_without_it_the_record_is_refused():
    raw = invoice()
    del raw["CurrencyRef"]
    assert parse("invoice", raw, home_currency="gbp").currency == "GBP"
    with pytest.raises(ValidationError) as caught:
        parse("invoice", raw)
    assert caught.value.field == "CurrencyRef"


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"TxnDate": "24/07/2025"}, "TxnDate", "24/07/2025"),
        ({"TotalAmt": "lots"}, "TotalAmt", "lots"),
        ({"TotalAmt": 150.001}, "TotalAmt", 150.001),
        ({"CurrencyRef": {"value": "EURO"}}, "CurrencyRef", "EURO"),
        ({"CustomerRef": None}, "CustomerRef", None),
    ],
)
def test_bad_values_are_refused_naming_the_field_and_the_raw_value(changes, field, value):
    with pytest.raises(ValidationError) as caught:
        parse("invoice", invoice(**changes))
    assert (caught.value.field, caught.value.value) == (field, value)


def test_a_wrong_shape_is_a_validation_error_not_a_crash():
    with pytest.raises(ValidationError):
        parse("invoice", invoice(Line="one line"))
    with pytest.raises(ValidationError):
        parse("invoice", invoice(Line=[5]))
    with pytest.raises(ValidationError):
        parse("invoice", invoice(TxnTaxDetail={"TaxLine": [{"TaxLineDetail": "x"}]}, TxnDate=5))
    with pytest.raises(ValidationError):
        parse("invoice", {"Invoice": "not an object"})


def test_a_deleted_stub_is_not_parsed_as_a_document():
    with pytest.raises(ValidationError) as caught:
        parse("invoice", {"Id": "241", "status": "Deleted", "domain": "QBO"})
    assert caught.value.field == "status"


def test_a_payment_lists_its_invoice_allocations_with_ids_and_known_numbers():
    record = parse("payment", fixture("payment.json"), invoice_numbers={"412": "EU-2025-0042"})
    assert isinstance(record, PaymentRecord)
    assert (record.external_id, record.reference, record.currency) == ("77", "stripe-ch_3Qx81", "EUR")
    assert (record.amount, record.method, record.status) == (Decimal("130.00"), "Credit card", "completed")
    assert [(a.invoice_external_id, a.invoice_number, a.amount) for a in record.allocations] == [
        ("412", "EU-2025-0042", Decimal("100.00")),
        ("415", "", Decimal("25.00")),
    ]
    assert record.allocations[0].allocated_on == date(2025, 3, 9)


def test_a_voided_payment_is_void():
    raw = copy.deepcopy(fixture("payment.json")["Payment"])
    raw.update(TotalAmt=0, PrivateNote="Voided", Line=[])
    assert parse("payment", raw).status == "void"


def test_credit_linked_lines_of_a_payment_are_not_invoice_allocations():
    raw = copy.deepcopy(fixture("payment.json")["Payment"])
    raw["Line"].append({"Amount": 25.0, "LinkedTxn": [{"TxnId": "73", "TxnType": "CreditMemo"}]})
    assert len(parse("payment", raw).allocations) == 2


@pytest.mark.parametrize(
    ("total", "remaining", "note", "status"),
    [
        (60, 60, "", "open"),
        (60, 20, "", "partially_applied"),
        (60, 0, "", "applied"),
        (0, 0, "Voided", "void"),
    ],
)
def test_credit_memo_status_follows_its_remaining_credit(total, remaining, note, status):
    raw = copy.deepcopy(fixture("credit_memo.json"))
    raw.update(TotalAmt=total, RemainingCredit=remaining, Balance=remaining, PrivateNote=note)
    assert parse("credit_note", raw).status == status


def test_a_credit_memo_parses_with_its_original_invoice_and_remaining_credit():
    record = parse("credit_note", fixture("credit_memo.json"))
    assert isinstance(record, CreditNoteRecord)
    assert (record.number, record.original_invoice_number, record.remaining_credit) == (
        "CN-1006",
        "1065",
        Decimal("20.00"),
    )
    assert sum(line.total for line in record.lines) == record.total == Decimal("60.00")


def test_a_customer_keeps_its_currency_and_drops_the_masked_tax_number():
    record = parse("customer", fixture("customer.json"))
    assert (record.name, record.email, record.currency, record.external_id) == (
        "Diego Rodriguez",
        "diego@example.com",
        "EUR",
        "58",
    )
    assert record.tax_number == ""
