"""Exact, locale-aware parsing of the values found in accountants' CSV exports.

Pure functions, no Django.  Nothing is guessed: a value that could mean two different
things raises :class:`ParseError` and says how to make the input explicit.

Decisions callers must know:

* A number must start and end with a digit: ``.5``, ``,5`` and ``12.`` are rejected.
* A trailing minus (``12.00-``) is rejected; ``-12.00``, U+2212 minus, ``+12``
  and ``(12.00)`` are accepted.
* ``decimal_mark=None`` reads dot-decimal unless the value can only be read as
  comma-decimal (``1.234,56``, ``100,00``, ``0,123``); ``1,234`` is 1234.
* A currency symbol is accepted when it is a symbol of the declared currency, or, with
  nothing declared, when Babel knows it as the symbol of exactly one currency (``€``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from babel import Locale, localedata
from babel.numbers import get_currency_precision, list_currencies

__all__ = [
    "MONEY_ROUNDING",
    "ParseError",
    "ParsedAmount",
    "currency_exponent",
    "money",
    "normalise_currency",
    "parse_amount",
    "parse_date",
    "parse_number",
    "round_money",
]

MONEY_ROUNDING = ROUND_HALF_UP

DATE_ORDERS = ("DMY", "MDY", "YMD")
DATE_ORDER_HINT = "declare the order with --date-order DMY|MDY|YMD"
CURRENCY_HINT = "give the ISO 4217 currency code (e.g. with --currency)"

_DIGITS = frozenset("0123456789")
_SPACES = frozenset(" \u00a0\u202f\u2009")  # space, NBSP, NNBSP, thin space
_APOSTROPHES = frozenset("'\u2019")
_MINUS = frozenset("-\u2212")
_SIGNS = _MINUS | {"+"}
_CONVENTION = {".": "dot-decimal", ",": "comma-decimal"}

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_NUMBERS = {name.lower(): i for i, name in enumerate(_MONTHS, 1)} | {
    name[:3].lower(): i for i, name in enumerate(_MONTHS, 1)
}
_MONTH_NUMBERS["sept"] = 9


class ParseError(ValueError):
    """A CSV value that cannot be read exactly; ``str()`` names the field and the raw value."""

    def __init__(self, field: str, raw: str, message: str) -> None:
        super().__init__(field, raw, message)
        self.field = field
        self.raw = raw
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.raw!r} {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedAmount:
    """An exact amount and the ISO currency the raw text stated (None if it stated none)."""

    value: Decimal
    currency: str | None


# --------------------------------------------------------------------------- currency


@cache
def _iso_codes() -> frozenset[str]:
    return frozenset(list_currencies())


def _symbol_key(symbol: str) -> str:
    """Comparable form of a symbol: no bidi marks, any run of whitespace as one space."""
    symbol = "".join(ch for ch in symbol if unicodedata.category(ch) != "Cf")
    return " ".join(symbol.split())


@cache
def _symbol_table() -> dict[str, frozenset[str]]:
    """Currency symbol -> ISO codes it stands for in at least one Babel locale."""
    table: dict[str, set[str]] = {}
    for identifier in localedata.locale_identifiers():
        for code, symbol in Locale.parse(identifier).currency_symbols.items():
            key = _symbol_key(symbol)
            if key and key != code:
                table.setdefault(key, set()).add(code)
    # Babel 2.x exposes no narrow symbols; the standard symbols above include "$", "€", "£", "¥", ...
    return {key: frozenset(codes) for key, codes in table.items()}


def _iso_code(raw: str) -> str | None:
    code = raw.strip().upper()
    return code if len(code) == 3 and code in _iso_codes() else None


def _require_code(code: str, field: str) -> str:
    iso = _iso_code(code)
    if iso is None:
        raise ParseError(field, code, "is not an ISO 4217 currency code")
    return iso


def _resolve_currency(token: str, declared: str | None, field: str, raw: str) -> str:
    """ISO code for a code or symbol found in ``raw``; ``declared`` is already an ISO code."""
    code = _iso_code(token)
    if code is not None:
        return code
    codes = _symbol_table().get(_symbol_key(token))
    if not codes:
        subject = "is" if token == raw.strip() else f"has {token!r}, which is"
        if len(token) == 3 and token.isalpha():
            raise ParseError(field, raw, f"{subject} not an ISO 4217 code; {CURRENCY_HINT}")
        message = f"{subject} not a currency code or a known currency symbol; {CURRENCY_HINT}"
        raise ParseError(field, raw, message)
    subject = "is" if token == raw.strip() else f"uses {token!r}, which is"
    listed = ", ".join(sorted(codes))
    if declared is not None:
        if declared in codes:
            return declared
        raise ParseError(field, raw, f"{subject} a symbol of {listed}, not of the declared {declared}")
    if len(codes) == 1:
        return next(iter(codes))
    raise ParseError(field, raw, f"{subject} an ambiguous currency symbol ({listed}); {CURRENCY_HINT}")


def currency_exponent(code: str) -> int:
    """Number of minor-unit digits of an ISO 4217 currency (JPY 0, USD 2, KWD 3, CLF 4)."""
    return get_currency_precision(_require_code(code, "currency"))


def normalise_currency(raw: str, *, declared: str | None = None, field: str = "currency") -> str:
    """ISO code for a currency cell: a code (any case) or a symbol of ``declared``.

    Without ``declared`` a symbol is accepted only if it stands for a single currency.
    """
    if declared is not None:
        declared = _require_code(declared, field)
    token = raw.strip()
    if not token:
        raise ParseError(field, raw, f"is not a currency; {CURRENCY_HINT}")
    return _resolve_currency(token, declared, field, raw)


def money(value: Decimal, currency: str, *, field: str, raw: str | None = None) -> Decimal:
    """``value`` at the currency's exponent; more decimal places than it has raises."""
    code = _require_code(currency, field)
    exponent = get_currency_precision(code)
    shown = raw if raw is not None else str(value)
    if not value.is_finite():
        raise ParseError(field, shown, f"is not a valid {code} amount")
    try:
        quantized = value.quantize(Decimal(1).scaleb(-exponent))
    except InvalidOperation:
        raise ParseError(field, shown, f"is not a valid {code} amount") from None
    if quantized != value:
        places = "no decimal places" if exponent == 0 else f"{exponent} decimal place" + "s" * (exponent > 1)
        raise ParseError(field, shown, f"is not a valid amount ({code} has {places})")
    return quantized


def round_money(value: Decimal, currency: str) -> Decimal:
    """Round a computed amount half-up to the currency's exponent."""
    exponent = currency_exponent(currency)
    return value.quantize(Decimal(1).scaleb(-exponent), rounding=MONEY_ROUNDING)


# --------------------------------------------------------------------------- numbers


class _Invalid(Exception):
    """Internal: the numeric core is invalid under one convention; args[0] says why."""


def _group_class(ch: str) -> str:
    if ch in _SPACES:
        return "space"
    if ch in _APOSTROPHES:
        return "apostrophe"
    return ch


def _read_core(core: str, mark: str) -> Decimal:
    """Decimal for a digits-and-separators string under decimal mark ``mark`` ("." or ",")."""
    group_chars = _SPACES | _APOSTROPHES | ({","} if mark == "." else {"."})
    for ch in core:
        if ch not in _DIGITS and ch != mark and ch not in group_chars:
            raise _Invalid(f"unexpected character {ch!r}")
    if core.count(mark) > 1:
        raise _Invalid(f"more than one decimal mark {mark!r}")
    integer, _, fraction = core.partition(mark)
    if any(ch not in _DIGITS for ch in fraction):
        raise _Invalid("thousands separator after the decimal mark")
    separators = {_group_class(ch) for ch in integer if ch not in _DIGITS}
    if len(separators) > 1:
        raise _Invalid("mixed thousands separators")
    if separators:
        groups = re.split(r"[^0-9]", integer)
        if not 1 <= len(groups[0]) <= 3 or any(len(group) != 3 for group in groups[1:]):
            raise _Invalid("thousands groups must have exactly 3 digits")
        if groups[0].startswith("0"):
            raise _Invalid("leading zero before a thousands separator")
        integer = "".join(groups)
    return Decimal(f"{integer}.{fraction}" if fraction else integer)


def _check_mark(decimal_mark: str | None) -> None:
    if decimal_mark not in (None, ".", ","):
        raise ValueError(f"decimal_mark must be '.', ',' or None, not {decimal_mark!r}")


def _read_number(core: str, decimal_mark: str | None, field: str, raw: str, what: str) -> Decimal:
    if decimal_mark is not None:
        try:
            return _read_core(core, decimal_mark)
        except _Invalid as exc:
            raise ParseError(field, raw, f"is not a {_CONVENTION[decimal_mark]} {what} ({exc})") from None
    try:
        return _read_core(core, ".")
    except _Invalid as dot_error:
        try:
            return _read_core(core, ",")
        except _Invalid:
            raise ParseError(field, raw, f"is not a valid {what} ({dot_error})") from None


@dataclass(frozen=True, slots=True)
class _Pieces:
    negative: bool
    core: str
    prefix: str
    suffix: str


def _split(raw: str, field: str, what: str) -> _Pieces:
    """Split ``raw`` into sign, numeric core (first to last digit) and the text around it."""
    text = raw.strip()
    if not text:
        raise ParseError(field, raw, f"is empty (expected {'an' if what == 'amount' else 'a'} {what})")
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative = True
        text = text[1:-1].strip()
    digits = [i for i, ch in enumerate(text) if ch in _DIGITS]
    if not digits:
        raise ParseError(field, raw, f"is not a valid {what} (no digits)")
    core = text[digits[0] : digits[-1] + 1]
    prefix = text[: digits[0]].strip()
    suffix = text[digits[-1] + 1 :].strip()
    if prefix and prefix[-1] in _SIGNS:
        sign, prefix = prefix[-1], prefix[:-1].strip()
    elif prefix and prefix[0] in _SIGNS:
        sign, prefix = prefix[0], prefix[1:].strip()
    else:
        sign = ""
    if any(ch in _SIGNS for ch in prefix):
        raise ParseError(field, raw, f"is not a valid {what} (more than one sign)")
    if sign and negative:
        raise ParseError(field, raw, f"is not a valid {what} (both a sign and parentheses)")
    if any(ch in _SIGNS for ch in suffix):
        raise ParseError(field, raw, f"is not a valid {what} (put the minus sign first: -12.00 or (12.00))")
    if any(ch in "()" for ch in prefix + suffix):
        raise ParseError(field, raw, f"is not a valid {what} (unbalanced parentheses)")
    return _Pieces(negative or sign in _MINUS, core, prefix, suffix)


def _signed(value: Decimal, negative: bool) -> Decimal:
    if value == 0:
        return abs(value)
    return -value if negative else value


def parse_amount(
    raw: str, *, field: str, decimal_mark: str | None = None, currency: str | None = None
) -> ParsedAmount:
    """Exact amount from ``raw`` plus the currency the text states (a code, or a symbol of ``currency``)."""
    _check_mark(decimal_mark)
    declared = _require_code(currency, field) if currency is not None else None
    pieces = _split(raw, field, "amount")
    if pieces.prefix and pieces.suffix:
        raise ParseError(field, raw, "is not a valid amount (text on both sides of the number)")
    token = pieces.prefix or pieces.suffix
    stray_mark = token and (token[-1] in ".," if pieces.prefix else token[0] in ".,")
    if stray_mark and _iso_code(token) is None and _symbol_key(token) not in _symbol_table():
        raise ParseError(field, raw, "is not a valid amount (the number must start and end with a digit)")
    stated: str | None = None
    if token:
        stated = _resolve_currency(token, declared, field, raw)
        if declared is not None and stated != declared:
            raise ParseError(field, raw, f"states {stated} but the row's currency is {declared}")
    value = _read_number(pieces.core, decimal_mark, field, raw, "amount")
    return ParsedAmount(_signed(value, pieces.negative), stated)


def parse_number(
    raw: str, *, field: str, decimal_mark: str | None = None, allow_percent: bool = False
) -> Decimal:
    """Exact quantity or rate; ``allow_percent`` permits a trailing ``%`` (``7,5 %`` -> 7.5)."""
    _check_mark(decimal_mark)
    pieces = _split(raw, field, "number")
    if pieces.prefix and pieces.prefix not in (".", ","):
        raise ParseError(field, raw, f"is not a valid number (unexpected {pieces.prefix!r})")
    if pieces.prefix or (pieces.suffix and pieces.suffix[0] in ".,"):
        raise ParseError(field, raw, "is not a valid number (it must start and end with a digit)")
    if pieces.suffix and not (allow_percent and pieces.suffix == "%"):
        raise ParseError(field, raw, f"is not a valid number (unexpected {pieces.suffix!r})")
    value = _read_number(pieces.core, decimal_mark, field, raw, "number")
    return _signed(value, pieces.negative)


# --------------------------------------------------------------------------- dates

_TIME = r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})" + _TIME)
_ISO_BASIC = re.compile(r"(\d{4})(\d{2})(\d{2})")
_CLOCK = re.compile(r"\s+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?$")
_NUMERIC = re.compile(r"(\d{1,4})([/.\- ])(\d{1,4})\2(\d{1,4})")
_SEP = r"(?:\s*[/.\-]\s*|\s+)"
_ORDINAL = r"(?:st|nd|rd|th)?"
_NAMED = (
    # 3 Apr 2024, 03-Apr-2024, 3rd April, 2024
    ("DMY", re.compile(rf"(\d{{1,2}}){_ORDINAL}{_SEP}([A-Za-z]+)\.?,?{_SEP}(\d{{4}}|\d{{2}})")),
    # Apr 3, 2024, April 3 2024
    ("MDY", re.compile(rf"([A-Za-z]+)\.?{_SEP}(\d{{1,2}}){_ORDINAL},?{_SEP}(\d{{4}}|\d{{2}})")),
    # 2024-Apr-03, 2024 April 3
    ("YMD", re.compile(rf"(\d{{4}}){_SEP}([A-Za-z]+)\.?{_SEP}(\d{{1,2}})")),
)


def _describe(value: date) -> str:
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def _make_date(year: str, month: int | str, day: str) -> date | None:
    """Date from components, or None if they do not form a calendar date."""
    if len(year) not in (2, 4) or not 1 <= len(str(day)) <= 2:
        return None
    if isinstance(month, str) and not 1 <= len(month) <= 2:
        return None
    try:
        return date(int(year) + (2000 if len(year) == 2 else 0), int(month), int(day))
    except ValueError:
        return None


def _read_order(parts: tuple[str, str, str], order: str) -> date | None:
    fields = dict(zip(order, parts, strict=True))
    return _make_date(fields["Y"], fields["M"], fields["D"])


def parse_date(raw: str, *, field: str, order: str | None = None) -> date:
    """Calendar date; ISO and month-name forms always, numeric forms in ``order`` or when unambiguous."""
    if order is not None:
        order = order.upper()
        if order not in DATE_ORDERS:
            raise ValueError(f"order must be one of {', '.join(DATE_ORDERS)} or None, not {order!r}")
    text = raw.strip()
    if not text:
        raise ParseError(field, raw, "is empty (expected a date)")
    iso = _ISO.fullmatch(text) or _ISO_BASIC.fullmatch(text)
    if iso:
        year, month, day = iso.groups()
        try:
            return date(int(year), int(month), int(day))
        except ValueError as exc:
            raise ParseError(field, raw, f"is not a valid date ({exc})") from None
    text = _CLOCK.sub("", text)
    for named_order, pattern in _NAMED:
        named = pattern.fullmatch(text)
        if named:
            fields = dict(zip(named_order, named.groups(), strict=True))
            month = _MONTH_NUMBERS.get(fields["M"].lower())
            if month is None:
                raise ParseError(field, raw, f"is not a valid date (unknown month {fields['M']!r})")
            result = _make_date(fields["Y"], month, fields["D"])
            if result is None:
                raise ParseError(field, raw, "is not a valid date (no such day)")
            return result
    numeric = _NUMERIC.fullmatch(text)
    if not numeric:
        raise ParseError(field, raw, "is not a date (expected e.g. 2024-04-03, 03/04/2024 or 3 Apr 2024)")
    parts = (numeric.group(1), numeric.group(3), numeric.group(4))
    if order is not None:
        result = _read_order(parts, order)
        if result is None:
            raise ParseError(field, raw, f"is not a valid date in the declared {order} order")
        return result
    readings = {candidate: _read_order(parts, candidate) for candidate in DATE_ORDERS}
    by_date: dict[date, list[str]] = {}
    for candidate, value in readings.items():
        if value is not None:
            by_date.setdefault(value, []).append(candidate)
    if not by_date:
        raise ParseError(field, raw, "is not a valid date in any order (DMY, MDY or YMD)")
    if len(by_date) > 1:
        described = [f"{_describe(value)} ({', '.join(orders)})" for value, orders in by_date.items()]
        listing = ", ".join(described[:-1]) + " or " + described[-1]
        raise ParseError(field, raw, f"is an ambiguous date: {listing}; {DATE_ORDER_HINT}")
    return next(iter(by_date))
