"""Each Stripe line's tax rate, from what Stripe sends: the expanded rate a tax names, else amount /
taxable_amount read to the simplest rate that gives every rounded amount; None when neither tells.

The fixtures next to this file are written from Stripe's documented shapes: the 2025 `taxes[]` (amount,
tax_behavior, taxable_amount, tax_rate_details.tax_rate as an id) and the older `tax_amounts[]` (amount,
inclusive, tax_rate, taxable_amount) with expanded `tax_rates[]` and `default_tax_rates[]`.
"""

from __future__ import annotations

import copy
import json
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connectors.base import ValidationError
from connectors.stripe.connector import StripeConnector
from connectors.stripe.taxes import STEPS, rate_bounds, simplest_rate
from tests.connectors.stripe.conftest import load

HERE = Path(__file__).parent / "fixtures"
parse = StripeConnector.parse


def fixture(name: str) -> dict:
    return json.loads((HERE / f"{name}.json").read_text())


def rates(raw: dict) -> list[Decimal | None]:
    return [line.tax_rate for line in parse("invoice", raw).lines]


# --- the 2025 `taxes` shape --------------------------------------------------------------------------
def test_exclusive_vat_lines_get_their_rates_from_amount_over_taxable_amount():
    invoice = parse("invoice", fixture("invoice_gbp_vat_exclusive"))
    assert [line.tax_rate for line in invoice.lines] == [
        Decimal(20),
        Decimal(20),
        Decimal(5),
        Decimal(0),
        None,
    ]
    oil = invoice.lines[0]
    assert (oil.subtotal, oil.tax_amount, oil.total) == (Decimal("80.00"), Decimal("16.00"), Decimal("96.00"))


def test_a_zero_rated_line_is_rated_zero_and_a_line_without_taxes_has_no_rate():
    book, gift = parse("invoice", fixture("invoice_gbp_vat_exclusive")).lines[3:]
    assert (book.tax_rate, book.tax_amount) == (Decimal(0), Decimal("0.00"))
    assert (gift.tax_rate, gift.tax_amount) == (None, Decimal("0.00"))


def test_a_reduced_rate_rounded_to_the_penny_still_reads_as_five_percent():
    # 5% of 39.99 is 1.9995: Stripe sends 200, which 4.99% to 5.01% would all give
    assert rates(fixture("invoice_gbp_vat_exclusive"))[2] == Decimal(5)


def test_inclusive_vat_reads_the_rate_on_the_net_amount():
    invoice = parse("invoice", fixture("invoice_gbp_vat_inclusive"))
    oil, voucher = invoice.lines
    assert (oil.subtotal, oil.tax_amount, oil.total, oil.tax_rate) == (
        Decimal("80.00"),
        Decimal("16.00"),
        Decimal("96.00"),
        Decimal(20),
    )
    # 9.99 with 20% inside: 1.665 of tax rounded to 1.67, on a net of 8.32 (1.67 / 8.32 is 20.07%)
    assert (voucher.subtotal, voucher.tax_amount, voucher.total, voucher.tax_rate) == (
        Decimal("8.32"),
        Decimal("1.67"),
        Decimal("9.99"),
        Decimal(20),
    )
    assert invoice.total == invoice.lines_total == Decimal("105.99")


def test_yen_rates_come_from_whole_yen_amounts_standard_reduced_and_inclusive():
    invoice = parse("invoice", fixture("invoice_jpy_jct"))
    # 10% of 1,234 yen is 123.4, 8% of 1,980 is 158.4; 3,300 yen with 10% inside is 3,000 + 300
    assert [line.tax_rate for line in invoice.lines] == [Decimal(10), Decimal(8), Decimal(10)]
    assert [line.tax_amount for line in invoice.lines] == [Decimal(123), Decimal(158), Decimal(300)]
    assert invoice.lines[2].subtotal == Decimal(3000)


def test_lines_sharing_a_tax_rate_pin_down_a_rate_no_single_line_could():
    raw = load("invoice_usd_open")  # 8.875% sales tax: 39.94 on 450.00 and 1.73 on 19.50
    assert rates(raw) == [Decimal("8.875"), Decimal("8.875")]
    # alone, 1.73 on 19.50 fits anything from 8.846% to 8.897%, and 8.85% is the simplest of those
    raw["lines"]["data"] = raw["lines"]["data"][1:]
    assert rates(raw) == [Decimal("8.85")]


def test_gst_and_pst_on_the_same_base_add_up_to_one_combined_rate():
    service, beans, _ = parse("invoice", fixture("invoice_cad_gst_pst")).lines
    assert (service.tax_rate, service.tax_amount) == (Decimal(12), Decimal("12.00"))
    assert (beans.tax_rate, beans.tax_amount) == (Decimal(5), Decimal("1.00"))


def test_taxes_on_different_bases_have_no_combined_rate():
    grinder = parse("invoice", fixture("invoice_cad_gst_pst")).lines[2]
    # GST on 100.00, PST on a reduced 50.00: no one rate on the net gives 8.50
    assert (grinder.tax_rate, grinder.tax_amount, grinder.subtotal) == (
        None,
        Decimal("8.50"),
        Decimal("100.00"),
    )


def test_taxes_with_different_behaviours_have_no_combined_rate():
    raw = fixture("invoice_cad_gst_pst")
    raw["lines"]["data"][0]["taxes"][1]["tax_behavior"] = "inclusive"
    assert rates(raw)[0] is None


# --- the older `tax_amounts` shape ------------------------------------------------------------------------
def test_older_lines_take_the_rate_their_tax_names_from_the_invoice_default_tax_rates():
    invoice = parse("invoice", fixture("invoice_usd_tax_amounts"))
    assert [line.tax_rate for line in invoice.lines] == [Decimal("8.875"), Decimal("8.875"), Decimal(4)]
    assert invoice.tax_total == Decimal("43.67")


def test_an_expanded_rate_wins_over_what_the_amounts_suggest():
    raw = fixture("invoice_usd_tax_amounts")
    raw["lines"]["data"] = raw["lines"]["data"][1:2]  # 1.73 on 19.50 alone reads 8.85%
    assert rates(raw) == [Decimal("8.875")]


def test_an_expanded_tax_rate_inside_a_tax_amount_is_used():
    raw = fixture("invoice_usd_tax_amounts")
    raw["default_tax_rates"] = []
    line = raw["lines"]["data"][1]
    line["tax_amounts"][0]["tax_rate"] = {
        "id": "txr_1PaNySalesTax08875",
        "object": "tax_rate",
        "percentage": 8.875,
    }
    assert rates(raw)[1] == Decimal("8.875")


def test_an_expanded_rate_in_the_2025_shape_is_used():
    raw = load("invoice_usd_open")
    raw["lines"]["data"] = raw["lines"]["data"][1:]
    raw["lines"]["data"][0]["taxes"][0]["tax_rate_details"]["tax_rate"] = {
        "id": "txr_1QaNySalesTax0001",
        "object": "tax_rate",
        "percentage": 8.875,
        "effective_percentage": 8.875,
    }
    assert rates(raw) == [Decimal("8.875")]


def test_the_effective_percentage_stripe_tax_applied_comes_before_the_statutory_one():
    raw = fixture("invoice_usd_tax_amounts")
    raw["default_tax_rates"][0].update(percentage=10.25, effective_percentage=8.875)
    assert rates(raw)[:2] == [Decimal("8.875"), Decimal("8.875")]


def test_a_stated_rate_the_amounts_contradict_is_not_used():
    raw = fixture("invoice_gbp_vat_exclusive")
    oil = raw["lines"]["data"][0]
    oil["tax_rates"] = [{"id": "txr_1RbGbVat20Standard01", "object": "tax_rate", "percentage": 20}]
    oil["taxes"][0].update(amount=0, taxability_reason="reverse_charge")
    raw["total_taxes"] = []
    line = parse("invoice", raw).lines[0]
    # reverse charged: no tax on the line, so no 20% tax code either
    assert (line.tax_rate, line.tax_amount) == (None, Decimal("0.00"))


def test_older_lines_without_taxable_amounts_use_the_listed_rate_or_none():
    raw = fixture("invoice_usd_tax_amounts")
    for line in raw["lines"]["data"]:
        for tax in line["tax_amounts"]:
            tax.pop("taxable_amount")
    assert rates(raw) == [Decimal("8.875"), Decimal("8.875"), Decimal(4)]
    raw["default_tax_rates"] = []
    raw["lines"]["data"][2]["tax_rates"] = []
    # tax, a rate id nothing expands and no taxable amount: no rate rather than a guess
    assert rates(raw) == [None, None, None]


def test_a_line_that_lists_a_rate_but_has_no_taxes_keeps_the_listed_rate():
    raw = fixture("invoice_usd_tax_amounts")
    line = raw["lines"]["data"][2]
    line["tax_amounts"] = []
    assert rates(raw)[2] == Decimal(4)


# --- no rate rather than a guess ---------------------------------------------------------------------------
def test_tax_too_small_to_tell_the_rate_gives_none():
    raw = fixture("invoice_gbp_vat_exclusive")
    raw["lines"]["data"] = [raw["lines"]["data"][1]]
    raw["lines"]["data"][0].update(amount=5, subtotal=5)
    raw["lines"]["data"][0]["taxes"][0].update(
        amount=1, taxable_amount=5, tax_rate_details={"tax_rate": "txr_1RbUnseen00000000001"}
    )
    raw["total_taxes"] = []
    # 1 penny on 5 pence is anything from 10% to 30%
    line = parse("invoice", raw).lines[0]
    assert (line.tax_rate, line.tax_amount) == (None, Decimal("0.01"))


def test_amounts_no_one_rate_explains_are_read_line_by_line():
    raw = fixture("invoice_gbp_vat_exclusive")
    delivery = raw["lines"]["data"][1]["taxes"][0]
    delivery.update(amount=0, taxability_reason="customer_exempt")
    assert rates(raw)[:2] == [Decimal(20), Decimal(0)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"taxable_amount": "80.00"}, "lines.data[0].taxes[0].taxable_amount"),
        ({"amount": 16.5}, "lines.data[0].taxes[0].amount"),
        ({"taxable_amount": True}, "lines.data[0].taxes[0].taxable_amount"),
    ],
)
def test_a_bad_tax_field_names_the_line_field_and_value(change, field):
    raw = fixture("invoice_gbp_vat_exclusive")
    raw["lines"]["data"][0]["taxes"][0].update(change)
    with pytest.raises(ValidationError) as caught:
        parse("invoice", raw)
    assert (caught.value.field, caught.value.value) == (field, next(iter(change.values())))


def test_a_bad_percentage_on_an_expanded_rate_names_it():
    raw = fixture("invoice_usd_tax_amounts")
    raw["default_tax_rates"][0]["percentage"] = "eight"
    with pytest.raises(ValidationError) as caught:
        parse("invoice", raw)
    assert (caught.value.field, caught.value.value) == ("default_tax_rates[0].percentage", "eight")


def test_credit_note_lines_get_rates_the_same_way():
    raw = copy.deepcopy(load("credit_note"))
    raw["lines"]["data"][0]["tax_rates"] = []
    # no expanded rate left: 1.73 on 19.50 alone
    assert parse("credit_note", raw).lines[0].tax_rate == Decimal("8.85")
    assert parse("credit_note", load("credit_note")).lines[0].tax_rate == Decimal("8.875")


# --- the reading of rounded amounts -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "taxable", "inclusive", "expected"),
    [
        (1600, 8000, False, "20"),  # 16.00 on 80.00
        (875, 5000, False, "17.5"),  # the old UK rate
        (145, 2000, False, "7.25"),  # California's base rate
        (8875, 100000, False, "8.875"),  # New York City
        (9975, 100000, False, "9.975"),  # Quebec QST
        (2000, 10000, True, "20"),  # 120.00 with VAT inside
        (123, 1234, False, "10"),  # 123.4 yen rounded down
        (158, 1980, False, "8"),  # 158.4 yen rounded down
        (147, 1833, True, "8"),  # 1,980 yen with 8% inside: 146.67 rounded up
        (0, 10000, False, "0"),
        (-1600, -8000, False, "20"),  # a credit line
        (20, 100, False, "20"),  # 0.20 on 1.00: only 20% of the whole rates fits
        (1, 5, False, None),  # 10% to 30%
        (16, 0, False, None),  # no base
        (-16, 80, False, None),  # negative tax on a positive base is not a rate
    ],
)
def test_rates_read_from_rounded_amounts(amount, taxable, inclusive, expected):
    bounds = rate_bounds(amount, taxable, inclusive=inclusive)
    found = simplest_rate(bounds) if bounds else None
    assert found == (Decimal(expected) if expected else None)


def test_a_rate_finer_than_the_amounts_show_reads_as_the_coarser_one_they_give():
    # 8.875% of 10.00 is 0.8875: 0.89 fits 8.85% to 8.95%, and 8.9% is the simplest; documented, and
    # the mapping then finds no tax code for 8.9 and holds the document back
    assert simplest_rate(rate_bounds(89, 1000, inclusive=False)) == Decimal("8.9")


ROUNDINGS = st.sampled_from([ROUND_HALF_UP, ROUND_HALF_EVEN])


@st.composite
def true_rate(draw):
    """A rate on one of the steps, as real VAT, GST and sales-tax rates are, up to 30%."""
    step = draw(st.sampled_from(STEPS[:6]))
    units = draw(st.integers(min_value=0, max_value=int(30 / step)))
    return step, units * step


@settings(max_examples=400, deadline=None)
@given(rate=true_rate(), base=st.integers(min_value=1, max_value=10**9), rounding=ROUNDINGS)
def test_an_exclusive_rate_is_recovered_whenever_the_amounts_resolve_its_step(rate, base, rounding):
    step, percent = rate
    tax = int((Decimal(base) * percent / 100).quantize(Decimal(1), rounding=rounding))
    bounds = rate_bounds(tax, base, inclusive=False)
    assert bounds is not None
    assert bounds[0] <= Fraction(percent) <= bounds[1]
    assume(bounds[1] - bounds[0] < Fraction(step))
    assert simplest_rate(bounds) == percent


@settings(max_examples=400, deadline=None)
@given(rate=true_rate(), gross=st.integers(min_value=2, max_value=10**9), rounding=ROUNDINGS)
def test_an_inclusive_rate_is_recovered_whenever_the_amounts_resolve_its_step(rate, gross, rounding):
    step, percent = rate
    tax = int((Decimal(gross) * percent / (100 + percent)).quantize(Decimal(1), rounding=rounding))
    bounds = rate_bounds(tax, gross - tax, inclusive=True)
    assert bounds is not None
    assert bounds[0] <= Fraction(percent) <= bounds[1]
    assume(bounds[1] - bounds[0] < Fraction(step))
    assert simplest_rate(bounds) == percent


@settings(max_examples=300, deadline=None)
@given(
    tax=st.integers(min_value=0, max_value=10**6),
    base=st.integers(min_value=1, max_value=10**7),
    inclusive=st.booleans(),
)
def test_a_rate_read_from_amounts_always_gives_those_amounts_back(tax, base, inclusive):
    bounds = rate_bounds(tax, base, inclusive=inclusive)
    found = simplest_rate(bounds) if bounds else None
    assume(found is not None)
    if inclusive:  # the tax inside the gross at that rate rounds to the tax sent
        gross = Decimal(base + tax)
        assert abs(gross * found / (100 + found) - tax) <= Decimal("0.5")
    else:
        assert abs(Decimal(base) * found / 100 - tax) <= Decimal("0.5")
