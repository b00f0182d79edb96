"""The tax rate of each line of a Stripe invoice or credit note, from what Stripe sends.

Since the 2025-03-31 API an invoice line no longer lists its tax rates: `taxes[]` holds each tax's
`amount`, `tax_behavior`, `taxable_amount` and `tax_rate_details.tax_rate`, a tax rate id that an invoice
fetch cannot expand (Stripe expands four levels deep at most). Before, `tax_amounts[]` held `amount`,
`inclusive`, `taxable_amount` and `tax_rate` (an id or the expanded rate) beside the expanded `tax_rates[]`.

A line's rate, in this order:
1. The percentage of the tax rate its tax refers to, when the document carries that rate expanded anywhere
   (the line's `tax_rates`, the invoice's `default_tax_rates`, an expanded `tax_rate` in a line's or the
   document's taxes). `effective_percentage` (what Stripe Tax applied) before `percentage` (which includes
   the statutory rate of jurisdictions that were not taxed); a stated rate the amounts contradict (20% on
   a reverse-charged line with no tax) is not used.
2. Otherwise amount / taxable_amount. Both are integers in the minor unit, and the tax was rounded to it,
   so they pin the rate down to an interval only: 100 (A - 1/2) / (T + e) <= rate <= 100 (A + 1/2) / (T - e),
   with e = 1/2 for inclusive tax (the taxable amount is the gross less the rounded tax) and 0 otherwise.
   Lines whose taxes name the same tax rate share one rate, so their intervals are intersected. The rate
   taken is the one on the coarsest of the steps 1, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0001 that lies
   in the interval: real VAT, GST and sales-tax rates have few decimals, and a final 5 when they have
   more (20, 17.5, 7.25, 8.875, 9.975). When that step holds two or more (amounts too small to tell, say
   1 cent of tax on 5 cents) there is no rate. A rate finer than the amounts can show is read as the
   coarser one that gives the same amounts (8.875% on 10.00 reads as 8.9%); it then finds no tax code
   mapping and the document waits, naming that rate.
3. Several taxes on one line (GST + PST, state + city sales tax) add up to one rate when each is known and
   all share the tax behaviour and the taxable amount: each tax then is that share of the same base, and
   the mapping gives a line one tax code, keyed by its combined rate (a QuickBooks combined tax code, a
   Xero rate with components). Taxes on different bases have no combined rate. A tax of zero whose rate is
   unknown adds nothing and is left out.

Anything else leaves the rate None; a line with tax and no rate is then held back by the mapping rather
than sent untaxed (sync.mapping.line_context).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from connectors.base import ValidationError
from connectors.money import decimal_value

STEPS = tuple(Decimal(step) for step in ("1", "0.5", "0.1", "0.05", "0.01", "0.005", "0.001", "0.0001"))
HALF = Fraction(1, 2)

Bounds = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class Tax:
    """One tax on one line, as Stripe sent it (amounts in minor units)."""

    amount: int
    taxable: int | None
    inclusive: bool
    rate_id: str
    stated: tuple[Decimal, ...]  # percentages of the expanded rate, the likeliest first

    @property
    def bounds(self) -> Bounds | None:
        return rate_bounds(self.amount, self.taxable, inclusive=self.inclusive)


def rate_bounds(amount: int, taxable: int | None, *, inclusive: bool) -> Bounds | None:
    """The rates (percent) that give `amount` of tax on `taxable`, both rounded to the minor unit."""
    if not taxable:
        return None
    if taxable < 0:  # a credit line: tax and base are both negative
        amount, taxable = -amount, -taxable
    slack = HALF if inclusive else Fraction(0)
    low = max(Fraction(100) * (amount - HALF) / (taxable + slack), Fraction(0))
    high = Fraction(100) * (amount + HALF) / (taxable - slack)
    return (low, high) if high >= low else None


def simplest_rate(bounds: Bounds) -> Decimal | None:
    """The rate on the coarsest step that lies within `bounds`, or None when that step holds several."""
    low, high = bounds
    for step in STEPS:
        exact = Fraction(step)
        first, last = math.ceil(low / exact), math.floor(high / exact)
        if last > first:
            return None
        if last == first:
            return Decimal(format((first * step).normalize(), "f"))
    return None


def line_tax_rates(document: Mapping[str, Any], lines: Sequence[Any]) -> list[Decimal | None]:
    """The tax rate of each line of `document` (an invoice or credit note), None where none is known."""
    known = _expanded_rates(document, lines)
    taxes = [
        _line_taxes(line, f"lines.data[{index}]", known) if isinstance(line, Mapping) else []
        for index, line in enumerate(lines)
    ]
    shared: dict[str, Bounds | None] = {}
    for tax in (tax for entries in taxes for tax in entries):
        if not tax.rate_id or tax.bounds is None:
            continue
        if tax.rate_id not in shared:
            shared[tax.rate_id] = tax.bounds
        elif (common := shared[tax.rate_id]) is not None:
            low, high = max(common[0], tax.bounds[0]), min(common[1], tax.bounds[1])
            # amounts that no single rate explains: each tax is read on its own
            shared[tax.rate_id] = (low, high) if low <= high else None
    rates: list[Decimal | None] = []
    for index, (line, entries) in enumerate(zip(lines, taxes, strict=True)):
        if entries:
            rates.append(_combined([(tax, _tax_rate(tax, shared)) for tax in entries]))
        else:  # no tax on the line: the rates it lists, if any, say how it is taxed
            listed = _listed_rates(line, f"lines.data[{index}]")
            rates.append(sum(listed, Decimal(0)) if listed else None)
    return rates


def _tax_rate(tax: Tax, shared: Mapping[str, Bounds | None]) -> Decimal | None:
    bounds = tax.bounds
    if tax.stated:
        if bounds is None:
            return tax.stated[0]
        return next((rate for rate in tax.stated if bounds[0] <= Fraction(rate) <= bounds[1]), None)
    common = shared.get(tax.rate_id) if tax.rate_id else None
    chosen = common or bounds
    return simplest_rate(chosen) if chosen else None


def _combined(rated: list[tuple[Tax, Decimal | None]]) -> Decimal | None:
    counted = [(tax, rate) for tax, rate in rated if not (tax.amount == 0 and rate is None)]
    if not counted:
        return None
    if any(rate is None for _, rate in counted):
        return None
    if len(counted) > 1:
        behaviours = {tax.inclusive for tax, _ in counted}
        bases = {tax.taxable for tax, _ in counted}
        if len(behaviours) > 1 or len(bases) > 1 or None in bases:
            return None
    return sum((rate for _, rate in counted if rate is not None), Decimal(0))


def _line_taxes(line: Mapping[str, Any], field: str, known: Mapping[str, tuple[Decimal, ...]]) -> list[Tax]:
    for key in ("taxes", "tax_amounts"):
        entries = array_field(line, key, field)
        if entries:
            return [_tax(entry, f"{field}.{key}[{index}]", known) for index, entry in enumerate(entries)]
    return []


def _tax(entry: Any, field: str, known: Mapping[str, tuple[Decimal, ...]]) -> Tax:
    if not isinstance(entry, Mapping):
        raise ValidationError(f"{field} is not an object", field=field, value=entry)
    rate = _rate_of(entry)
    rate_id = expandable_id(rate)
    stated = _percentages(rate, f"{field}.tax_rate") if isinstance(rate, Mapping) else ()
    return Tax(
        amount=_units(entry.get("amount"), f"{field}.amount"),
        taxable=_units(entry.get("taxable_amount"), f"{field}.taxable_amount", optional=True),
        inclusive=entry.get("tax_behavior") == "inclusive" or entry.get("inclusive") is True,
        rate_id=rate_id,
        stated=stated or known.get(rate_id, ()),
    )


def _rate_of(entry: Mapping[str, Any]) -> Any:
    """The tax rate a tax names: `tax_rate_details.tax_rate` since 2025, `tax_rate` before."""
    details = entry.get("tax_rate_details")
    if isinstance(details, Mapping):
        return details.get("tax_rate")
    return entry.get("tax_rate")


def _expanded_rates(document: Mapping[str, Any], lines: Sequence[Any]) -> dict[str, tuple[Decimal, ...]]:
    """Every tax rate the document carries expanded, by id."""
    found: list[tuple[Any, str]] = [
        (rate, f"default_tax_rates[{index}]")
        for index, rate in enumerate(array_field(document, "default_tax_rates"))
    ]
    for key in ("total_taxes", "total_tax_amounts"):
        found += [
            (_rate_of(entry), f"{key}[{index}].tax_rate")
            for index, entry in enumerate(array_field(document, key))
            if isinstance(entry, Mapping)
        ]
    for number, line in enumerate(lines):
        if not isinstance(line, Mapping):
            continue
        field = f"lines.data[{number}]"
        listed = array_field(line, "tax_rates", field)
        found += [(rate, f"{field}.tax_rates[{index}]") for index, rate in enumerate(listed)]
        for key in ("taxes", "tax_amounts"):
            found += [
                (_rate_of(entry), f"{field}.{key}[{index}].tax_rate")
                for index, entry in enumerate(array_field(line, key, field))
                if isinstance(entry, Mapping)
            ]
    known: dict[str, tuple[Decimal, ...]] = {}
    for rate, field in found:
        if isinstance(rate, Mapping) and expandable_id(rate):
            percentages = _percentages(rate, field)
            if percentages:
                known.setdefault(expandable_id(rate), percentages)
    return known


def _listed_rates(line: Any, field: str) -> list[Decimal]:
    if not isinstance(line, Mapping):
        return []
    listed = []
    for index, rate in enumerate(array_field(line, "tax_rates", field)):
        percentages = _percentages(rate, f"{field}.tax_rates[{index}]") if isinstance(rate, Mapping) else ()
        if not percentages:
            return []
        listed.append(percentages[0])
    return listed


def _percentages(rate: Mapping[str, Any], field: str) -> tuple[Decimal, ...]:
    values: list[Decimal] = []
    for key in ("effective_percentage", "percentage"):
        if rate.get(key) is not None:
            value = decimal_value(rate[key], field=f"{field}.{key}")
            if value not in values:
                values.append(value)
    return tuple(values)


def _units(value: Any, field: str, *, optional: bool = False) -> Any:
    """An amount in minor units as Stripe sends it: an integer (`None` when the field may be null)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} {value!r} is not an integer amount", field=field, value=value)
    return value


def array_field(raw: Mapping[str, Any], key: str, prefix: str = "") -> list[Any]:
    """An array field (absent or null: empty); anything else is refused."""
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        field = f"{prefix}.{key}" if prefix else key
        raise ValidationError(f"{field} is not an array", field=field, value=value)
    return value


def expandable_id(value: Any) -> str:
    """An expandable field's id, whether it came as a string or as the expanded object."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")
