"""Showing stored amounts the way the currency writes them (storage keeps 4 places for every currency)."""

from __future__ import annotations

from decimal import Decimal

from connectors.money import currency_exponent


def money_str(value: Decimal | None, currency: str) -> str:
    """At the currency's minor unit: JPY 1500, GBP 12.30, KWD 12.345."""
    if value is None:
        return ""
    return str(value.quantize(Decimal(1).scaleb(-currency_exponent(currency))))


def price_str(value: Decimal | None, currency: str) -> str:
    """A unit price: at least the currency's minor unit, more places only when the price has them."""
    if value is None:
        return ""
    places = max(currency_exponent(currency), -int(value.normalize().as_tuple().exponent))
    return str(value.quantize(Decimal(1).scaleb(-places)))


def number_str(value: Decimal | None) -> str:
    """A quantity or rate without trailing zeros: 5, 2.5, 8.875."""
    if value is None:
        return ""
    return format(value.normalize(), "f")
