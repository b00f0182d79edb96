"""Money at the edge: ISO 4217 minor units for every platform (JPY 0, USD 2, KWD 3), never a hard-coded 2."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from babel.numbers import get_currency_precision, list_currencies

from connectors.base import ValidationError


@cache
def _known() -> frozenset[str]:
    return frozenset(list_currencies())


def currency_code(raw: Any, *, field: str = "currency") -> str:
    """An ISO 4217 code from any case ("usd" -> "USD"); ValidationError naming the field otherwise."""
    code = str(raw or "").strip().upper()
    if code not in _known():
        raise ValidationError(f"{field} {raw!r} is not an ISO 4217 currency code", field=field, value=raw)
    return code


def currency_exponent(code: str) -> int:
    """Number of minor-unit digits of an ISO 4217 currency (JPY 0, USD 2, KWD 3, CLF 4)."""
    return get_currency_precision(currency_code(code))


def decimal_value(raw: Any, *, field: str) -> Decimal:
    """A JSON number or numeric string as an exact Decimal (floats through their shortest repr)."""
    if isinstance(raw, bool) or raw is None or raw == "":
        raise ValidationError(f"{field} {raw!r} is not a number", field=field, value=raw)
    try:
        value = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(str(raw).strip())
    except InvalidOperation:
        raise ValidationError(f"{field} {raw!r} is not a number", field=field, value=raw) from None
    if not value.is_finite():
        raise ValidationError(f"{field} {raw!r} is not a number", field=field, value=raw)
    return value


# Amounts are stored as numeric(19, 4): at most 15 digits before the point.
AMOUNT_LIMIT = Decimal(10) ** 15


def amount(raw: Any, currency: str, *, field: str) -> Decimal:
    """A decimal amount at the currency's exponent ("150.0" USD -> 150.00); more places than that raise,
    and so does an amount the database cannot hold (AMOUNT_LIMIT or more)."""
    value = decimal_value(raw, field=field)
    if abs(value) >= AMOUNT_LIMIT:
        raise ValidationError(
            f"{field} {raw!r} is too large (at most 15 digits before the point)", field=field, value=raw
        )
    places = Decimal(1).scaleb(-currency_exponent(currency))
    try:
        quantized = value.quantize(places)
    except InvalidOperation:
        raise ValidationError(f"{field} {raw!r} is not an amount", field=field, value=raw) from None
    if quantized != value:
        raise ValidationError(
            f"{field} {raw!r} has more decimal places than {currency} allows", field=field, value=raw
        )
    return quantized


def price(raw: Any, currency: str, *, field: str) -> Decimal:
    """A unit price: at least the currency's places, more kept when the platform sent them (4 dp prices)."""
    value = decimal_value(raw, field=field)
    places = max(currency_exponent(currency), -int(value.normalize().as_tuple().exponent))
    return value.quantize(Decimal(1).scaleb(-places))


def from_minor_units(raw: Any, currency: str, *, field: str) -> Decimal:
    """An integer in minor units (Stripe's 1000 USD cents, 1000 JPY yen) -> Decimal at the exponent."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValidationError(f"{field} {raw!r} is not an integer amount", field=field, value=raw)
    try:
        units = int(raw)
    except ValueError:
        raise ValidationError(f"{field} {raw!r} is not an integer amount", field=field, value=raw) from None
    exponent = currency_exponent(currency)
    return Decimal(units).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def to_minor_units(value: Decimal, currency: str, *, field: str = "amount") -> int:
    """Decimal -> integer minor units; refuses a value with more places than the currency has."""
    exponent = currency_exponent(currency)
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValidationError(
            f"{field} {value} has more decimal places than {currency} allows", field=field, value=str(value)
        )
    return int(scaled)
