"""Input fields for money, quantities and currencies: exact Decimals, errors that quote the value."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connectors import money
from connectors.base import ValidationError as RecordError

DECIMAL_SCHEMA = {
    "oneOf": [
        {"type": "string", "pattern": r"^-?\d{1,15}(\.\d{1,6})?$", "example": "120.00"},
        {"type": "number"},
    ],
    "description": "A decimal as a string (preferred: exact) or a JSON number.",
}
LIMIT = Decimal(10) ** 15  # storage holds 19 digits, 4 of them decimals


@extend_schema_field(DECIMAL_SCHEMA)
class DecimalInputField(serializers.Field):
    """A JSON number or numeric string as an exact Decimal (floats through their shortest repr).

    `places` caps the decimals a value may carry whatever the currency (quantities: 6, rates: 4); money
    is checked against the document's currency once the currency is known.
    """

    def __init__(self, *, places: int = 6, minimum: Decimal | None = None, **kwargs: Any) -> None:
        self.places = places
        self.minimum = minimum
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            value = money.decimal_value(data, field=self.field_name or "value")
        except RecordError:
            raise serializers.ValidationError(f"{data!r} is not a number.") from None
        if abs(value) >= LIMIT:
            raise serializers.ValidationError(f"{data!r} is too large (at most 15 digits before the point).")
        if -int(value.normalize().as_tuple().exponent) > self.places:
            raise serializers.ValidationError(f"{data!r} has more than {self.places} decimal places.")
        if self.minimum is not None and value < self.minimum:
            raise serializers.ValidationError(f"{data!r} is less than {self.minimum}.")
        return value

    def to_representation(self, value: Any) -> str:
        return format(value, "f")


@extend_schema_field(
    {"type": "string", "pattern": "^[A-Za-z]{3}$", "example": "GBP", "description": "ISO 4217 currency code."}
)
class CurrencyField(serializers.CharField):
    """`null_as_blank`: null is taken as "" (no currency), for optional currencies callers send as null."""

    def __init__(self, *, null_as_blank: bool = False, **kwargs: Any) -> None:
        self.null_as_blank = null_as_blank
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None and self.null_as_blank:
            return (True, "")
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        try:
            return money.currency_code(text, field=self.field_name or "currency")
        except RecordError:
            raise serializers.ValidationError(f"{data!r} is not an ISO 4217 currency code.") from None


def at_currency(value: Decimal, currency: str) -> Decimal | None:
    """`value` at the currency's minor unit, or None when it has more places than the currency allows."""
    places = Decimal(1).scaleb(-money.currency_exponent(currency))
    quantized = value.quantize(places)
    return quantized if quantized == value else None


def minor_unit_message(value: Decimal, currency: str) -> str:
    exponent = money.currency_exponent(currency)
    return f"{format(value, 'f')!r} has more decimal places than {currency} allows ({exponent})."
