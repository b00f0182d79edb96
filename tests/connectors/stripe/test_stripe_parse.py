"""Stripe records -> canonical records: minor units at each currency's exponent, statuses, lines, taxes,
payments with fees, refunds, credit notes and payouts."""

from __future__ import annotations

import contextlib
import copy
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import ValidationError, record_to_dict
from connectors.stripe.connector import StripeConnector, parse_payment, parse_payout
from tests.connectors.stripe.conftest import load

parse = StripeConnector.parse


def test_a_usd_invoice_becomes_a_canonical_invoice_in_dollars():
    invoice = parse("invoice", load("invoice_usd_open"))
    assert (invoice.external_id, invoice.number, invoice.currency, invoice.status) == (
        "in_1QaUsdOpen0000000000001",
        "HUD-0042",
        "USD",
        "open",
    )
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        Decimal("469.50"),
        Decimal("41.67"),
        Decimal("511.17"),
    )
    assert (invoice.amount_paid, invoice.amount_due) == (Decimal("0.00"), Decimal("511.17"))
    assert invoice.issue_date == date(2026, 1, 2)  # effective_at, not created
    assert invoice.due_date == date(2026, 1, 15)
    assert invoice.memo == "Consulting, December"
    assert invoice.lines_total == invoice.total


def test_the_invoice_customer_comes_from_customer_name_and_email():
    customer = parse("invoice", load("invoice_usd_open")).customer
    assert record_to_dict(customer) == {
        "name": "Hudson Analytics Inc",
        "email": "ap@hudson-analytics.example",
        "tax_number": "12-3456789",
        "external_id": "cus_HudsonAnalytics01",
        "currency": "",
    }


def test_invoice_lines_carry_quantity_unit_price_tax_and_product():
    first, second = parse("invoice", load("invoice_usd_open")).lines
    assert (first.description, first.quantity, first.unit_price) == (
        "Consulting (hours)",
        3,
        Decimal("150.00"),
    )
    assert (first.subtotal, first.tax_amount, first.total) == (
        Decimal("450.00"),
        Decimal("39.94"),
        Decimal("489.94"),
    )
    assert (first.item_code, first.line_number) == ("prod_Consulting0001", 1)
    assert (second.unit_price, second.tax_amount, second.line_number) == (
        Decimal("19.50"),
        Decimal("1.73"),
        2,
    )


def test_yen_are_whole_units():
    invoice = parse("invoice", load("invoice_jpy_paid"))
    assert (invoice.currency, invoice.status) == ("JPY", "paid")
    assert (invoice.total, invoice.tax_total, invoice.amount_due) == (
        Decimal(49500),
        Decimal(4500),
        Decimal(0),
    )
    assert invoice.total.as_tuple().exponent == 0
    assert invoice.lines[0].unit_price == Decimal(22500)
    # no effective_at: the finalisation date
    assert invoice.issue_date == date(2026, 1, 5)


def test_dinars_have_three_decimals_and_a_part_paid_invoice_is_partially_paid():
    invoice = parse("invoice", load("invoice_kwd_partial"))
    assert (invoice.currency, invoice.status) == ("KWD", "partially_paid")
    assert (invoice.total, invoice.amount_paid, invoice.amount_due) == (
        Decimal("162.345"),
        Decimal("50.000"),
        Decimal("112.345"),
    )
    assert invoice.lines[1].unit_price == Decimal("4.115")
    # even the zeros are at the currency's exponent
    assert invoice.tax_total.as_tuple().exponent == invoice.lines[0].tax_amount.as_tuple().exponent == -3
    assert invoice.lines[1].total == Decimal("12.345")


def test_an_expanded_customer_names_the_invoice_customer():
    customer = parse("invoice", load("invoice_kwd_partial")).customer
    assert (customer.name, customer.email, customer.external_id) == (
        "Gulf Logistics WLL",
        "finance@gulf-logistics.example",
        "cus_GulfLogistics01",
    )


@pytest.mark.parametrize(
    ("status", "amount_paid", "expected"),
    [
        ("draft", 0, "draft"),
        ("open", 0, "open"),
        ("open", 100, "partially_paid"),
        ("paid", 51117, "paid"),
        ("void", 0, "void"),
        ("uncollectible", 0, "open"),
        ("uncollectible", 100, "partially_paid"),
    ],
)
def test_invoice_statuses_map_to_canonical_ones(status, amount_paid, expected):
    raw = {**load("invoice_usd_open"), "status": status, "amount_paid": amount_paid}
    assert parse("invoice", raw).status == expected


def test_an_uncollectible_invoice_says_so_in_its_memo():
    raw = {**load("invoice_usd_open"), "status": "uncollectible"}
    assert parse("invoice", raw).memo == "Consulting, December; marked uncollectible at Stripe"


def test_a_draft_without_a_number_uses_its_id():
    raw = {**load("invoice_usd_open"), "status": "draft", "number": None}
    assert parse("invoice", raw).number == "in_1QaUsdOpen0000000000001"


def test_inclusive_taxes_are_inside_the_line_amount():
    raw = copy.deepcopy(load("invoice_usd_open"))
    line = raw["lines"]["data"][1]
    line["taxes"][0].update(tax_behavior="inclusive", amount=159)
    parsed = parse("invoice", raw).lines[1]
    assert (parsed.subtotal, parsed.tax_amount, parsed.total) == (
        Decimal("17.91"),
        Decimal("1.59"),
        Decimal("19.50"),
    )


def test_line_discounts_reduce_the_line_subtotal():
    raw = copy.deepcopy(load("invoice_usd_open"))
    raw["lines"]["data"][0]["discount_amounts"] = [{"amount": 4500, "discount": "di_1"}]
    assert parse("invoice", raw).lines[0].subtotal == Decimal("405.00")


def test_a_line_without_a_unit_amount_divides_its_amount_by_its_quantity():
    raw = copy.deepcopy(load("invoice_usd_open"))
    raw["lines"]["data"][0]["pricing"] = {"type": "price_details", "unit_amount_decimal": None}
    raw["lines"]["data"][0]["amount"] = 1000
    assert parse("invoice", raw).lines[0].unit_price == Decimal("3.333333")


def test_older_invoices_with_tax_amounts_still_parse():
    raw = copy.deepcopy(load("invoice_usd_open"))
    raw.pop("total_taxes")
    raw["total_tax_amounts"] = [{"amount": 4167, "inclusive": False, "tax_rate": "txr_1"}]
    for line in raw["lines"]["data"]:
        line["tax_amounts"] = [{"amount": tax["amount"], "inclusive": False} for tax in line.pop("taxes")]
    invoice = parse("invoice", raw)
    assert (invoice.tax_total, invoice.lines[0].tax_amount) == (Decimal("41.67"), Decimal("39.94"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "zzz"}, "currency"),
        ({"total": 12.5}, "total"),
        ({"status": "pending"}, "status"),
        ({"amount_remaining": None}, "amount_remaining"),
        ({"effective_at": "yesterday"}, "effective_at"),
        ({"object": "charge"}, "object"),
    ],
)
def test_a_bad_invoice_names_the_field_and_value(change, field):
    raw = {**load("invoice_usd_open"), **change}
    with pytest.raises(ValidationError) as caught:
        parse("invoice", raw)
    assert caught.value.field == field
    assert caught.value.value == next(iter(change.values()))


def test_a_bad_line_amount_names_the_line():
    raw = copy.deepcopy(load("invoice_usd_open"))
    raw["lines"]["data"][1]["amount"] = "19.50"
    with pytest.raises(ValidationError) as caught:
        parse("invoice", raw)
    assert (caught.value.field, caught.value.value) == ("lines.data[1].amount", "19.50")


def test_a_charge_is_a_payment_with_its_fee_from_the_balance_transaction():
    payment = parse("payment", load("charge"))
    assert (payment.external_id, payment.processor_transaction_id, payment.reference) == (
        "ch_3QdCharge00000000000001",
        "ch_3QdCharge00000000000001",
        "pi_3QdIntent00000000000001",
    )
    assert (payment.amount, payment.fee, payment.currency, payment.status) == (
        Decimal("511.17"),
        Decimal("15.12"),
        "USD",
        "completed",
    )
    assert payment.method == "card"
    assert payment.transaction_date == date(2026, 1, 15)
    assert payment.customer.name == "Hudson Analytics Inc"
    assert "net 496.05 USD" in payment.memo


def test_a_charge_takes_its_allocations_from_the_invoice_payments():
    invoice_payment = {**load("invoice_payment"), "invoice": load("invoice_usd_open")}
    payment = parse_payment(load("charge"), invoice_payments=[invoice_payment])
    (allocation,) = payment.allocations
    assert record_to_dict(allocation) == {
        "invoice_number": "HUD-0042",
        "amount": "511.17",
        "allocated_on": "2026-01-15",
        "invoice_external_id": "in_1QaUsdOpen0000000000001",
    }


def test_a_charge_settled_in_another_currency_keeps_its_fee_out_of_the_amount_currency():
    raw = copy.deepcopy(load("charge"))
    raw["balance_transaction"].update(currency="gbp", amount=40210, fee=1190, net=39020, exchange_rate=0.7866)
    payment = parse("payment", raw)
    assert payment.fee is None
    assert "settled as 390.20 GBP net of 11.90 GBP fees" in payment.memo


def test_a_charge_without_an_expanded_balance_transaction_has_no_fee():
    raw = {**load("charge"), "balance_transaction": "txn_3QdCharge00000000000001"}
    assert parse("payment", raw).fee is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"status": "pending"}, "pending"),
        ({"status": "failed"}, "failed"),
        ({"captured": False, "amount_captured": 0}, "pending"),
    ],
)
def test_charge_statuses(change, expected):
    assert parse("payment", {**load("charge"), **change}).status == expected


def test_a_refund_is_a_negative_payment_in_yen():
    refund = parse("payment", load("refund"))
    assert (refund.amount, refund.currency, refund.fee, refund.status) == (
        Decimal(-11250),
        "JPY",
        Decimal(0),
        "completed",
    )
    assert (refund.reference, refund.processor_transaction_id) == (
        "ch_3QeChargeJpy000000000001",
        refund.external_id,
    )
    assert refund.memo.startswith("refund of ch_3QeChargeJpy000000000001 (requested_by_customer)")
    assert refund.allocations == ()


def test_a_canceled_refund_is_void():
    assert parse("payment", {**load("refund"), "status": "canceled"}).status == "void"


def test_an_invoice_payment_is_a_payment_allocated_to_its_invoice():
    payment = parse("payment", load("invoice_payment"))
    assert (payment.amount, payment.status, payment.processor_transaction_id) == (
        Decimal("511.17"),
        "completed",
        "pi_3QdIntent00000000000001",
    )
    assert payment.allocations[0].invoice_external_id == "in_1QaUsdOpen0000000000001"


def test_an_invoice_payment_with_expanded_charge_has_the_fee():
    raw = copy.deepcopy(load("invoice_payment"))
    raw["payment"]["payment_intent"] = {
        "id": "pi_3QdIntent00000000000001",
        "object": "payment_intent",
        "latest_charge": load("charge"),
    }
    payment = parse("payment", raw)
    assert (payment.fee, payment.processor_transaction_id) == (Decimal("15.12"), "ch_3QdCharge00000000000001")


def test_a_post_payment_credit_note_partly_refunded_is_partially_applied():
    note = parse("credit_note", load("credit_note"))
    assert (note.number, note.status, note.currency) == ("HUD-0042-CN-01", "partially_applied", "USD")
    assert (note.subtotal, note.tax_total, note.total) == (
        Decimal("19.50"),
        Decimal("1.73"),
        Decimal("21.23"),
    )
    # 21.23 after payment, 10.00 refunded: the rest sits on the customer's balance
    assert note.remaining_credit == Decimal("11.23")
    assert note.allocations == ()
    assert note.memo == "Support plan not used"
    (line,) = note.lines
    assert (line.quantity, line.unit_price, line.tax_amount, line.tax_rate) == (
        1,
        Decimal("19.50"),
        Decimal("1.73"),
        Decimal("8.875"),
    )


def test_a_pre_payment_credit_note_is_applied_to_its_invoice():
    raw = {
        **load("credit_note"),
        "type": "pre_payment",
        "pre_payment_amount": 2123,
        "post_payment_amount": 0,
        "refunds": [],
        "invoice": {"id": "in_1QaUsdOpen0000000000001", "number": "HUD-0042"},
    }
    note = parse("credit_note", raw)
    assert (note.status, note.remaining_credit, note.original_invoice_number) == ("applied", 0, "HUD-0042")
    (allocation,) = note.allocations
    assert (allocation.invoice_number, allocation.invoice_external_id, allocation.amount) == (
        "HUD-0042",
        "in_1QaUsdOpen0000000000001",
        Decimal("21.23"),
    )


def test_a_credit_note_all_on_the_customer_balance_is_open():
    raw = {**load("credit_note"), "refunds": []}
    assert (parse("credit_note", raw).status, parse("credit_note", raw).remaining_credit) == (
        "open",
        Decimal("21.23"),
    )


def test_a_void_credit_note_is_void():
    assert parse("credit_note", {**load("credit_note"), "status": "void"}).status == "void"


def test_a_payout_carries_its_balance_transactions():
    transactions = load("payout_balance_transactions")["data"]
    payout = parse_payout(load("payout"), transactions=transactions)
    assert (payout.external_id, payout.amount, payout.currency, payout.status) == (
        "po_1QgPayout00000000000001",
        Decimal("383.55"),
        "USD",
        "paid",
    )
    assert payout.arrival_date == date(2026, 1, 21)
    assert [(line.kind, line.source_id, line.amount, line.fee, line.net) for line in payout.lines] == [
        ("charge", "ch_3QdCharge00000000000001", Decimal("511.17"), Decimal("15.12"), Decimal("496.05")),
        ("refund", "re_3QfRefund00000000000001", Decimal("-112.50"), Decimal("0.00"), Decimal("-112.50")),
        ("payout", "po_1QgPayout00000000000001", Decimal("-383.55"), Decimal("0.00"), Decimal("-383.55")),
    ]
    assert sum(line.net for line in payout.lines[:-1]) == payout.amount


def test_a_customer_parses():
    customer = parse(
        "customer",
        {"id": "cus_1", "object": "customer", "name": None, "email": "a@b.example", "currency": "eur"},
    )
    assert (customer.name, customer.email, customer.currency) == ("a@b.example", "a@b.example", "EUR")


def test_a_deleted_object_cannot_be_parsed():
    with pytest.raises(ValidationError, match="deleted"):
        parse("invoice", {"id": "in_1", "object": "invoice", "deleted": True})


def test_a_payment_must_be_a_payment_object():
    with pytest.raises(ValidationError) as caught:
        parse("payment", load("invoice_usd_open"))
    assert (caught.value.field, caught.value.value) == ("object", "invoice")


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value, path, new):
    if not path:
        return new
    copied = copy.copy(value)
    copied[path[0]] = _replace(value[path[0]], path[1:], new)
    return copied


json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20) | st.text(max_size=6)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=6), children, max_size=2)
    ),
    max_leaves=6,
)


@pytest.mark.parametrize(
    ("object_type", "fixture"),
    [
        ("invoice", "invoice_usd_open"),
        ("invoice", "invoice_kwd_partial"),
        ("payment", "charge"),
        ("payment", "refund"),
        ("payment", "invoice_payment"),
        ("credit_note", "credit_note"),
        ("payout", "payout"),
    ],
)
def test_any_one_field_replaced_either_parses_or_is_a_validation_error(object_type, fixture):
    raw = load(fixture)
    paths = list(_paths(raw))[1:]

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(st.sampled_from(paths), json_values)
    def check(path, value):
        with contextlib.suppress(ValidationError):
            StripeConnector.parse(object_type, _replace(raw, path, value))

    check()
