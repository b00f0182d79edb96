"""Tests for connectors.csv.parsing: exact, locale-aware parsing of CSV export values."""

from __future__ import annotations

import pickle
from datetime import date
from decimal import Decimal

import pytest
from babel.dates import format_date
from babel.numbers import NumberFormatError, format_currency, format_decimal, parse_decimal
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connectors.csv.parsing import (
    MONEY_ROUNDING,
    ParsedAmount,
    ParseError,
    currency_exponent,
    money,
    normalise_currency,
    parse_amount,
    parse_date,
    parse_number,
    round_money,
)

PROPERTY = settings(max_examples=150, derandomize=True, deadline=None, database=None)

NBSP = "\u00a0"
NNBSP = "\u202f"


def amount(raw: str, **kwargs) -> ParsedAmount:
    return parse_amount(raw, field="unit_price", **kwargs)


def rejects_amount(raw: str, **kwargs) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_amount(raw, field="unit_price", **kwargs)
    return info.value


def rejects_date(raw: str, order: str | None = None) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_date(raw, field="issue_date", order=order)
    return info.value


# ---------------------------------------------------------------------------- ParseError


def test_parse_error_is_a_value_error_with_field_raw_and_message():
    error = ParseError("unit_price", "12,3,4", "is not a valid amount (bad)")
    assert isinstance(error, ValueError)
    assert (error.field, error.raw, error.message) == ("unit_price", "12,3,4", "is not a valid amount (bad)")


def test_parse_error_str_names_field_and_raw_value():
    assert str(ParseError("unit_price", "12,3,4", "is not a valid amount (bad)")) == (
        "unit_price: '12,3,4' is not a valid amount (bad)"
    )


def test_parse_error_survives_pickling():
    error = pickle.loads(pickle.dumps(ParseError("qty", "x", "is not a number")))
    assert (error.field, error.raw, str(error)) == ("qty", "x", "qty: 'x' is not a number")


def test_parse_error_from_parser_uses_caller_field_name():
    error = rejects_amount("12,3,4")
    assert error.field == "unit_price"
    assert error.raw == "12,3,4"
    assert str(error).startswith("unit_price: '12,3,4' is not a valid amount (")


def test_money_rounding_is_half_up():
    assert MONEY_ROUNDING == "ROUND_HALF_UP"


# ---------------------------------------------------------------------------- currency


@pytest.mark.parametrize(("code", "exponent"), [("JPY", 0), ("USD", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4)])
def test_currency_exponent_comes_from_iso_4217(code, exponent):
    assert currency_exponent(code) == exponent


def test_currency_exponent_rejects_unknown_code():
    with pytest.raises(ParseError, match="not an ISO 4217"):
        currency_exponent("XYZ")


def test_normalise_currency_upper_cases_and_strips_code():
    assert normalise_currency(" usd ") == "USD"


def test_normalise_currency_rejects_unknown_code():
    with pytest.raises(ParseError, match="not an ISO 4217 code") as info:
        normalise_currency("XYZ")
    assert info.value.field == "currency"
    assert "'XYZ'" in str(info.value)


def test_normalise_currency_uses_caller_field_name():
    with pytest.raises(ParseError) as info:
        normalise_currency("XYZ", field="row_currency")
    assert info.value.field == "row_currency"


def test_normalise_currency_accepts_symbol_of_declared_currency():
    assert normalise_currency("$", declared="CAD") == "CAD"


def test_normalise_currency_rejects_ambiguous_symbol_without_declaration():
    with pytest.raises(ParseError, match=r"ambiguous.*--currency"):
        normalise_currency("$")


def test_normalise_currency_rejects_symbol_of_another_currency():
    with pytest.raises(ParseError, match="symbol of EUR, not of the declared USD"):
        normalise_currency("€", declared="USD")


def test_normalise_currency_accepts_symbol_unique_to_one_currency():
    assert normalise_currency("€") == "EUR"


@pytest.mark.parametrize(
    ("symbol", "declared"),
    [("£", "GBP"), ("¥", "JPY"), ("¥", "CNY"), ("kr", "SEK"), ("kr", "NOK"), ("R$", "BRL"), ("US$", "USD")],
)
def test_normalise_currency_resolves_symbols_against_declared(symbol, declared):
    assert normalise_currency(symbol, declared=declared) == declared


@pytest.mark.parametrize("symbol", ["£", "¥", "kr"])
def test_normalise_currency_rejects_shared_symbols_without_declaration(symbol):
    with pytest.raises(ParseError, match="ambiguous"):
        normalise_currency(symbol)


@pytest.mark.parametrize(("symbol", "code"), [("CA$", "CAD"), ("US$", "USD"), ("R$", "BRL")])
def test_normalise_currency_accepts_prefixed_dollar_symbols_without_declaration(symbol, code):
    assert normalise_currency(symbol) == code


def test_normalise_currency_rejects_unknown_symbol():
    with pytest.raises(ParseError, match=r"not a currency code or a known currency symbol.*--currency"):
        normalise_currency("@@")


def test_normalise_currency_rejects_empty_cell():
    with pytest.raises(ParseError):
        normalise_currency("  ")


def test_normalise_currency_rejects_invalid_declared_code():
    with pytest.raises(ParseError, match="not an ISO 4217"):
        normalise_currency("$", declared="DOLLARS")


def test_normalise_currency_code_wins_over_declaration():
    # A code is explicit: callers compare it with the row's currency themselves.
    assert normalise_currency("gbp", declared="USD") == "GBP"


# ---------------------------------------------------------------------------- amounts: currencies


def test_parse_amount_returns_frozen_parsed_amount():
    parsed = amount("1.00")
    assert parsed == ParsedAmount(Decimal("1.00"), None)
    with pytest.raises(AttributeError):
        parsed.value = Decimal(2)  # type: ignore[misc]


def test_parse_amount_dollar_with_declared_usd():
    assert amount("$1,234.56", currency="USD") == ParsedAmount(Decimal("1234.56"), "USD")


def test_parse_amount_comma_decimal_with_euro_suffix():
    assert amount("1.234,56 €") == ParsedAmount(Decimal("1234.56"), "EUR")


def test_parse_amount_comma_decimal_with_dollar_suffix_and_declared_cad():
    assert amount("100,00$", currency="CAD") == ParsedAmount(Decimal("100.00"), "CAD")


def test_parse_amount_code_prefix():
    assert amount("EUR 99") == ParsedAmount(Decimal("99"), "EUR")


def test_parse_amount_code_suffix():
    assert amount("99 EUR") == ParsedAmount(Decimal("99"), "EUR")


def test_parse_amount_code_without_space():
    assert amount("EUR99") == ParsedAmount(Decimal("99"), "EUR")


def test_parse_amount_lower_case_code():
    assert amount("99 eur") == ParsedAmount(Decimal("99"), "EUR")


def test_parse_amount_code_then_negative_number():
    assert amount("USD -1,000") == ParsedAmount(Decimal("-1000"), "USD")


def test_parse_amount_minus_before_symbol():
    assert amount("-$5.00", currency="USD") == ParsedAmount(Decimal("-5.00"), "USD")


def test_parse_amount_minus_after_symbol():
    assert amount("$-5.00", currency="USD") == ParsedAmount(Decimal("-5.00"), "USD")


def test_parse_amount_without_currency_text_states_none():
    assert amount("12.00", currency="USD") == ParsedAmount(Decimal("12.00"), None)


def test_parse_amount_symbol_with_period_resolves():
    assert amount("kr. 100", currency="DKK") == ParsedAmount(Decimal("100"), "DKK")


def test_parse_amount_rejects_symbol_conflicting_with_currency():
    error = rejects_amount("€5", currency="USD")
    assert "symbol of EUR" in str(error)
    assert "USD" in str(error)


def test_parse_amount_rejects_code_conflicting_with_currency():
    error = rejects_amount("GBP 5", currency="USD")
    assert "states GBP but the row's currency is USD" in str(error)


def test_parse_amount_rejects_dollar_without_currency():
    error = rejects_amount("$5.00")
    assert "ambiguous" in str(error)
    assert "--currency" in str(error)


def test_parse_amount_accepts_euro_without_currency():
    assert amount("€5") == ParsedAmount(Decimal("5"), "EUR")


def test_parse_amount_rejects_unknown_code():
    assert "not an ISO 4217 code" in str(rejects_amount("99 XYZ"))


def test_parse_amount_rejects_unknown_symbol():
    assert "not a currency code or a known currency symbol" in str(rejects_amount("99 zz"))


def test_parse_amount_rejects_currency_on_both_sides():
    rejects_amount("EUR 99 EUR")


def test_parse_amount_rejects_invalid_currency_argument():
    with pytest.raises(ParseError, match="not an ISO 4217"):
        amount("5", currency="Dollars")


# ---------------------------------------------------------------------------- amounts: signs


def test_parse_amount_parentheses_are_negative():
    assert amount("(12.00)").value == Decimal("-12.00")


def test_parse_amount_parentheses_around_symbol_are_negative():
    assert amount("($12.00)", currency="USD") == ParsedAmount(Decimal("-12.00"), "USD")


def test_parse_amount_hyphen_minus_is_negative():
    assert amount("-12.00").value == Decimal("-12.00")


def test_parse_amount_unicode_minus_is_negative():
    assert amount("\u221212.00").value == Decimal("-12.00")


def test_parse_amount_plus_sign_is_accepted():
    assert amount("+12.00").value == Decimal("12.00")


def test_parse_amount_rejects_trailing_minus():
    assert "minus sign first" in str(rejects_amount("12.00-"))


def test_parse_amount_rejects_sign_inside_parentheses():
    rejects_amount("(-12.00)")


def test_parse_amount_rejects_two_signs():
    rejects_amount("-$-5", currency="USD")


def test_parse_amount_rejects_unbalanced_parenthesis():
    rejects_amount("(12.00")


def test_parse_amount_negative_zero_is_zero():
    value = amount("-0.00").value
    assert value == 0
    assert not value.is_signed()


# ---------------------------------------------------------------------------- amounts: separators


@pytest.mark.parametrize("separator", [" ", NBSP, NNBSP])
def test_parse_amount_space_thousands_with_comma_decimal(separator):
    assert amount(f"1{separator}234,56").value == Decimal("1234.56")


@pytest.mark.parametrize("separator", [" ", NBSP, NNBSP])
def test_parse_amount_space_thousands_with_dot_decimal(separator):
    assert amount(f"1{separator}234.56").value == Decimal("1234.56")


@pytest.mark.parametrize("apostrophe", ["'", "\u2019"])
def test_parse_amount_apostrophe_thousands(apostrophe):
    assert amount(f"1{apostrophe}234.56").value == Decimal("1234.56")


def test_parse_amount_keeps_trailing_zeros_exactly():
    assert str(amount("12.50").value) == "12.50"


def test_parse_amount_leading_zero_fraction():
    assert amount("0.5").value == Decimal("0.5")


@pytest.mark.parametrize("raw", [".5", ",5", "$.5", "-.5"])
def test_parse_amount_rejects_number_starting_with_mark(raw):
    assert "start and end with a digit" in str(rejects_amount(raw, currency="USD"))


def test_parse_amount_rejects_number_ending_with_mark():
    assert "start and end with a digit" in str(rejects_amount("12."))


def test_parse_amount_rejects_empty_string():
    assert "is empty" in str(rejects_amount(""))


def test_parse_amount_rejects_blank_string():
    rejects_amount("   ")


def test_parse_amount_rejects_symbol_only():
    rejects_amount("$", currency="USD")


@pytest.mark.parametrize("raw", ["abc", "12a3", "1O0", "1e5", "5 $ 5", "12 34 56 7"])
def test_parse_amount_rejects_garbage(raw):
    assert repr(raw) in str(rejects_amount(raw, currency="USD"))


def test_parse_amount_rejects_indian_grouping_and_says_so():
    assert "exactly 3 digits" in str(rejects_amount("1,23,456"))


def test_parse_amount_rejects_mixed_thousands_separators():
    assert "mixed thousands separators" in str(rejects_amount("1,234 567"))


def test_parse_amount_rejects_leading_zero_group():
    assert "leading zero" in str(rejects_amount("0,123", decimal_mark="."))


def test_parse_amount_rejects_two_decimal_marks_when_dot_declared():
    assert "more than one decimal mark" in str(rejects_amount("1.2.3", decimal_mark="."))


def test_parse_amount_rejects_double_separator():
    rejects_amount("1  234.56")


def test_parse_amount_rejects_non_ascii_digits():
    rejects_amount("\u0661\u0662")


# ---------------------------------------------------------------------------- amounts: decimal mark


def test_undeclared_mark_reads_single_comma_three_digits_as_thousands():
    assert amount("1,234").value == Decimal("1234")


def test_undeclared_mark_reads_single_dot_three_digits_as_decimal():
    assert amount("1.234").value == Decimal("1.234")


def test_undeclared_mark_reads_dot_then_comma_as_comma_decimal():
    assert amount("1.234,56").value == Decimal("1234.56")


@pytest.mark.parametrize(("raw", "expected"), [("100,00", "100.00"), ("12,5", "12.5"), ("1,2345", "1.2345")])
def test_undeclared_mark_reads_comma_not_followed_by_three_digits_as_decimal(raw, expected):
    assert amount(raw).value == Decimal(expected)


def test_undeclared_mark_reads_dot_grouped_millions_as_comma_decimal():
    assert amount("1.234.567").value == Decimal("1234567")


def test_undeclared_mark_reads_zero_comma_three_digits_as_decimal():
    assert amount("0,123").value == Decimal("0.123")


def test_undeclared_mark_reads_comma_grouped_dot_decimal():
    assert amount("1,234,567.89").value == Decimal("1234567.89")


def test_dot_declared_reads_comma_as_thousands():
    assert amount("1,234", decimal_mark=".").value == Decimal("1234")


def test_dot_declared_rejects_comma_decimal_and_names_convention():
    assert "is not a dot-decimal amount" in str(rejects_amount("100,00", decimal_mark="."))


def test_dot_declared_rejects_dot_then_comma():
    assert "is not a dot-decimal amount" in str(rejects_amount("1.234,56", decimal_mark="."))


def test_comma_declared_reads_comma_decimal():
    assert amount("1.234,56", decimal_mark=",").value == Decimal("1234.56")


def test_comma_declared_reads_single_comma_three_digits_as_decimal():
    assert amount("1,234", decimal_mark=",").value == Decimal("1.234")


def test_comma_declared_reads_dot_as_thousands():
    assert amount("1.234", decimal_mark=",").value == Decimal("1234")


def test_comma_declared_rejects_dot_decimal_and_names_convention():
    error = rejects_amount("1,234.56", decimal_mark=",")
    assert "'1,234.56' is not a comma-decimal amount" in str(error)


def test_comma_declared_reads_apostrophe_thousands():
    assert amount("1'234,5", decimal_mark=",").value == Decimal("1234.5")


def test_invalid_decimal_mark_argument_is_a_programming_error():
    with pytest.raises(ValueError, match="decimal_mark"):
        amount("1", decimal_mark=";")


# ---------------------------------------------------------------------------- money / round_money


def test_money_quantizes_to_currency_exponent():
    assert str(money(Decimal("12.5"), "USD", field="total")) == "12.50"


def test_money_keeps_exact_trailing_zeros():
    assert str(money(Decimal("12.50"), "USD", field="total")) == "12.50"


def test_money_drops_zeros_beyond_exponent():
    assert str(money(Decimal("12.500"), "USD", field="total")) == "12.50"


def test_money_rejects_more_places_than_currency_allows():
    with pytest.raises(ParseError) as info:
        money(Decimal("12.345"), "USD", field="total")
    assert info.value.field == "total"
    assert "'12.345'" in str(info.value)
    assert "USD has 2 decimal places" in str(info.value)


def test_money_rejects_fraction_of_yen():
    with pytest.raises(ParseError, match="JPY has no decimal places"):
        money(Decimal("1000.5"), "JPY", field="total")


def test_money_accepts_whole_yen_written_with_zero_fraction():
    assert str(money(Decimal("1000.0"), "JPY", field="total")) == "1000"


def test_money_accepts_three_place_dinar():
    assert money(Decimal("1.234"), "KWD", field="total") == Decimal("1.234")
    assert str(money(Decimal("1.234"), "KWD", field="total")) == "1.234"


def test_money_error_shows_raw_text_when_given():
    with pytest.raises(ParseError) as info:
        money(Decimal("12.345"), "USD", field="total", raw="$12.345")
    assert info.value.raw == "$12.345"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1E+40"])
def test_money_rejects_non_finite_and_huge_values(value):
    with pytest.raises(ParseError):
        money(Decimal(value), "USD", field="total")


def test_round_money_rounds_half_up():
    assert round_money(Decimal("2.345"), "USD") == Decimal("2.35")
    assert round_money(Decimal("-2.345"), "USD") == Decimal("-2.35")


def test_round_money_rounds_to_zero_places_for_yen():
    assert str(round_money(Decimal("2.5"), "JPY")) == "3"


def test_round_money_pads_to_exponent():
    assert str(round_money(Decimal("2"), "BHD")) == "2.000"


# ---------------------------------------------------------------------------- numbers


def test_parse_number_reads_quantity():
    assert parse_number("3", field="quantity") == Decimal("3")


def test_parse_number_allows_negative_quantity():
    assert parse_number("-1", field="quantity") == Decimal("-1")


def test_parse_number_percent_when_allowed():
    assert parse_number("20%", field="tax_rate", allow_percent=True) == Decimal("20")


def test_parse_number_comma_percent_with_space():
    assert parse_number("7,5 %", field="tax_rate", decimal_mark=",", allow_percent=True) == Decimal("7.5")


def test_parse_number_rejects_percent_when_not_allowed():
    with pytest.raises(ParseError, match="'%'"):
        parse_number("20%", field="quantity")


def test_parse_number_rejects_currency():
    with pytest.raises(ParseError, match=r"quantity: '\$5'"):
        parse_number("$5", field="quantity")


def test_parse_number_follows_undeclared_mark_rules():
    assert parse_number("12,5", field="quantity") == Decimal("12.5")
    assert parse_number("1,234", field="quantity") == Decimal("1234")


def test_parse_number_dot_declared_rejects_comma_decimal():
    with pytest.raises(ParseError, match="is not a dot-decimal number"):
        parse_number("12,5", field="quantity", decimal_mark=".")


def test_parse_number_rejects_leading_mark():
    with pytest.raises(ParseError, match="start and end with a digit"):
        parse_number(".5", field="quantity")


def test_parse_number_rejects_empty():
    with pytest.raises(ParseError, match="is empty"):
        parse_number("", field="quantity")


# ---------------------------------------------------------------------------- dates: ISO


def test_parse_date_iso():
    assert parse_date("2024-04-03", field="issue_date") == date(2024, 4, 3)


def test_parse_date_iso_is_accepted_under_any_declared_order():
    for order in ("DMY", "MDY", "YMD"):
        assert parse_date("2024-04-03", field="issue_date", order=order) == date(2024, 4, 3)


@pytest.mark.parametrize(
    "raw",
    ["2024-04-03T10:15:00", "2024-04-03T10:15:00Z", "2024-04-03T10:15:00.123+02:00", "2024-04-03 10:15"],
)
def test_parse_date_iso_datetime_takes_date_part(raw):
    assert parse_date(raw, field="issue_date") == date(2024, 4, 3)


def test_parse_date_iso_basic_eight_digits():
    assert parse_date("20240403", field="issue_date") == date(2024, 4, 3)


def test_parse_date_rejects_impossible_iso_date():
    error = rejects_date("2024-02-30")
    assert "'2024-02-30'" in str(error)


def test_parse_date_accepts_leap_day():
    assert parse_date("2024-02-29", field="issue_date") == date(2024, 2, 29)


# ---------------------------------------------------------------------------- dates: month names


@pytest.mark.parametrize(
    "raw",
    [
        "3 Apr 2024",
        "Apr 3, 2024",
        "03-Apr-2024",
        "3 April 2024",
        "April 3 2024",
        "3 APR 2024",
        "3rd April, 2024",
        "2024-Apr-03",
        "3 Apr 24",
        "Apr. 3, 2024",
    ],
)
def test_parse_date_month_names_are_unambiguous_under_any_order(raw):
    for order in (None, "DMY", "MDY", "YMD"):
        assert parse_date(raw, field="issue_date", order=order) == date(2024, 4, 3)


def test_parse_date_accepts_sept_abbreviation():
    assert parse_date("3 Sept 2024", field="issue_date") == date(2024, 9, 3)


def test_parse_date_rejects_unknown_month_name():
    assert "unknown month" in str(rejects_date("3 Foo 2024"))


def test_parse_date_rejects_impossible_named_date():
    rejects_date("31 Feb 2024")


# ---------------------------------------------------------------------------- dates: numeric


def test_parse_date_declared_dmy():
    assert parse_date("03/04/2024", field="issue_date", order="DMY") == date(2024, 4, 3)


def test_parse_date_declared_mdy():
    assert parse_date("03/04/2024", field="issue_date", order="MDY") == date(2024, 3, 4)


def test_parse_date_declared_ymd():
    assert parse_date("2024/04/03", field="issue_date", order="YMD") == date(2024, 4, 3)


def test_parse_date_declared_order_is_case_insensitive():
    assert parse_date("03/04/2024", field="issue_date", order="dmy") == date(2024, 4, 3)


@pytest.mark.parametrize("raw", ["03.04.2024", "03-04-2024", "03 04 2024", "3/4/2024"])
def test_parse_date_numeric_separators(raw):
    assert parse_date(raw, field="issue_date", order="DMY") == date(2024, 4, 3)


def test_parse_date_two_digit_year_is_2000s():
    assert parse_date("03/04/24", field="issue_date", order="DMY") == date(2024, 4, 3)


def test_parse_date_rejects_invalid_date_in_declared_order_and_names_order():
    error = rejects_date("13/04/2024", order="MDY")
    assert "MDY" in str(error)
    assert "'13/04/2024'" in str(error)


def test_parse_date_declared_order_is_not_overridden_by_four_digit_year():
    assert "DMY" in str(rejects_date("2024/04/03", order="DMY"))


def test_parse_date_rejects_mixed_separators():
    rejects_date("03/04-2024", order="DMY")


def test_parse_date_drops_trailing_clock_time():
    assert parse_date("03/04/2024 10:30", field="issue_date", order="DMY") == date(2024, 4, 3)


def test_parse_date_undeclared_accepts_only_possible_dmy_reading():
    assert parse_date("25/12/2024", field="issue_date") == date(2024, 12, 25)


def test_parse_date_undeclared_accepts_only_possible_mdy_reading():
    assert parse_date("12/25/2024", field="issue_date") == date(2024, 12, 25)


def test_parse_date_undeclared_accepts_ymd_with_four_digit_year():
    assert parse_date("2024/12/25", field="issue_date") == date(2024, 12, 25)


def test_parse_date_undeclared_accepts_readings_that_agree():
    assert parse_date("05/05/2024", field="issue_date") == date(2024, 5, 5)


def test_parse_date_undeclared_ambiguous_lists_readings_and_asks_for_order():
    error = rejects_date("03/04/2024")
    assert "ambiguous" in str(error)
    assert "3 April 2024 (DMY) or 4 March 2024 (MDY)" in str(error)
    assert "--date-order DMY|MDY|YMD" in str(error)


def test_parse_date_undeclared_ambiguous_groups_agreeing_orders():
    assert "5 May 2006 (DMY, MDY) or 6 May 2005 (YMD)" in str(rejects_date("05/05/06"))


def test_parse_date_undeclared_rejects_date_valid_in_no_order():
    rejects_date("13/13/2024")


@pytest.mark.parametrize("raw", ["garbage", "", "2024", "1/2", "1/2/3/4", "2024-13", "32/32/32", "20241301"])
def test_parse_date_rejects_garbage_naming_raw_value(raw):
    error = rejects_date(raw)
    assert error.field == "issue_date"
    assert repr(raw) in str(error)


def test_parse_date_invalid_order_argument_is_a_programming_error():
    with pytest.raises(ValueError, match="order"):
        parse_date("2024-01-01", field="issue_date", order="DDMMYY")


# ---------------------------------------------------------------------------- properties: amounts

LOCALES = {  # locale -> (declared decimal mark, currencies to format with)
    "en_US": (".", ["USD", "EUR", "JPY", "KWD", "GBP", "CAD", "CLF"]),
    "de_DE": (",", ["EUR", "USD", "JPY", "CHF", "KWD"]),
    "fr_FR": (",", ["EUR", "USD", "JPY", "GBP", "CAD", "BHD"]),
    "de_CH": (".", ["CHF", "EUR", "USD", "JPY"]),
}
LOCALE_CURRENCY_PAIRS = [(loc, code) for loc, (_, codes) in LOCALES.items() for code in codes]


@st.composite
def money_values(draw, pairs=tuple(LOCALE_CURRENCY_PAIRS)):
    locale, code = draw(st.sampled_from(pairs))
    value = draw(
        st.decimals(
            min_value=-(10**9),
            max_value=10**9,
            places=currency_exponent(code),
            allow_nan=False,
            allow_infinity=False,
        )
    )
    return locale, code, value


@PROPERTY
@given(money_values())
def test_property_format_currency_round_trips_with_declared_mark(sample):
    locale, code, value = sample
    text = format_currency(value, code, locale=locale)
    parsed = parse_amount(text, field="total", decimal_mark=LOCALES[locale][0], currency=code)
    assert parsed.value == value, text
    assert parsed.currency == code
    assert money(parsed.value, code, field="total") == value


@PROPERTY
@given(money_values())
def test_property_accounting_format_round_trips(sample):
    locale, code, value = sample
    text = format_currency(value, code, locale=locale, format_type="accounting")
    parsed = parse_amount(text, field="total", decimal_mark=LOCALES[locale][0], currency=code)
    assert parsed == ParsedAmount(value, code), text


@PROPERTY
@given(money_values())
def test_property_format_decimal_round_trips_as_amount_and_number(sample):
    locale, _, value = sample
    text = format_decimal(value, locale=locale, decimal_quantization=False)
    mark = LOCALES[locale][0]
    assert parse_amount(text, field="total", decimal_mark=mark) == ParsedAmount(value, None), text
    assert parse_number(text, field="quantity", decimal_mark=mark) == value, text


@PROPERTY
@given(st.decimals(min_value=-(10**12), max_value=10**12, places=4, allow_nan=False, allow_infinity=False))
def test_property_undeclared_mark_reads_en_us_values(value):
    text = format_decimal(value, locale="en_US", decimal_quantization=False)
    assert parse_amount(text, field="total").value == value, text


@PROPERTY
@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_property_undeclared_mark_reads_two_place_comma_values(value):
    text = format_decimal(value, format="#,##0.00", locale="de_DE")
    assert parse_amount(text, field="total").value == value, text


@PROPERTY
@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_property_percent_round_trips(tenths):
    value = Decimal(tenths).scaleb(-1)
    text = format_decimal(value, locale="de_DE", decimal_quantization=False) + "\u00a0%"
    assert parse_number(text, field="tax_rate", decimal_mark=",", allow_percent=True) == value


BABEL_STRICT_CASES = [
    (".", "en_US", "0123456789,."),
    (",", "de_DE", "0123456789.,"),
    (",", "fr_FR", "0123456789," + NNBSP),
    (".", "de_CH", "0123456789.\u2019"),
]


@PROPERTY
@given(st.sampled_from(BABEL_STRICT_CASES), st.data())
def test_property_agrees_with_babel_strict_parse_decimal(case, data):
    mark, locale, alphabet = case
    middle = data.draw(st.text(alphabet=alphabet, max_size=9))
    raw = data.draw(st.sampled_from("123456789")) + middle
    assume(raw[-1].isdigit())
    try:
        expected = parse_decimal(raw, locale=locale, strict=True)
    except NumberFormatError:
        expected = None
    try:
        got = parse_number(raw, field="quantity", decimal_mark=mark)
    except ParseError:
        got = None
    assert got == expected, raw


# ---------------------------------------------------------------------------- properties: dates

ORDER_PATTERNS = {"DMY": ("dd", "MM", "yyyy"), "MDY": ("MM", "dd", "yyyy"), "YMD": ("yyyy", "MM", "dd")}


def _format_numeric(value: date, order: str, separator: str, pad: bool, two_digit_year: bool) -> str:
    parts = {
        "D": f"{value.day:02d}" if pad else str(value.day),
        "M": f"{value.month:02d}" if pad else str(value.month),
        "Y": f"{value.year % 100:02d}" if two_digit_year else f"{value.year:04d}",
    }
    return separator.join(parts[letter] for letter in order)


@PROPERTY
@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.sampled_from(["DMY", "MDY", "YMD"]),
    st.sampled_from(["/", ".", "-", " "]),
    st.booleans(),
    st.booleans(),
)
def test_property_numeric_dates_round_trip_with_declared_order(value, order, separator, pad, two_digit_year):
    assume(not two_digit_year or value.year >= 2000)
    text = _format_numeric(value, order, separator, pad, two_digit_year)
    assert parse_date(text, field="issue_date", order=order) == value, text


@PROPERTY
@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.sampled_from(["d MMM y", "MMM d, y", "dd-MMM-yyyy", "MMMM d, y", "d MMMM y"]),
    st.sampled_from([None, "DMY", "MDY", "YMD"]),
)
def test_property_month_name_dates_round_trip_under_any_order(value, pattern, order):
    text = format_date(value, pattern, locale="en")
    assert parse_date(text, field="issue_date", order=order) == value, text


@PROPERTY
@given(
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1900, max_value=2099),
    st.sampled_from(["DMY", "MDY"]),
    st.sampled_from(["/", ".", "-", " "]),
)
def test_property_undeclared_ambiguous_dates_always_raise(day, month, year, order, separator):
    assume(day != month)
    text = _format_numeric(date(year, month, day), order, separator, pad=True, two_digit_year=False)
    with pytest.raises(ParseError, match="ambiguous") as info:
        parse_date(text, field="issue_date")
    assert "--date-order" in str(info.value)


@PROPERTY
@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)).filter(lambda d: d.day > 12),
    st.sampled_from(["DMY", "MDY"]),
)
def test_property_undeclared_unambiguous_dates_are_accepted(value, order):
    text = _format_numeric(value, order, "/", pad=True, two_digit_year=False)
    assert parse_date(text, field="issue_date") == value, text
