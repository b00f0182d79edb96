"""Mapping: canonical values -> a destination's ids and codes, by pure functions over a snapshot.

`MappingTable` is a plain snapshot of a `MappingSet` (rows by kind), the destination's rules (which line
keys it needs) and the reference data pulled from it (the codes that exist there). The functions here
read nothing else, so a dry run, a push and a test all map the same way. A value with no mapping, or a
mapping that points at something the destination does not have, becomes a `MappingProblem` naming the
kind, the source value and where it was met; the document it belongs to is blocked, nothing else.

Rows are looked up by exact source value, then by the default row whose source value is `*`:
- revenue_account and item: by the line's item code;
- tax_code: by the line's tax rate in percent as written without trailing zeros ("20", "5", "0"), or
  "none" for a line without a rate. A line that carries tax but no rate is held back wherever the
  destination takes tax codes: sent with no code, or the "none" code, it would arrive untaxed;
- payment_method: by the payment's method ("card", "bank_transfer", ...);
- customer: by the customer's email, then tax number, then name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

DEFAULT = "*"
LINE_KINDS = {"item": "item", "account": "revenue_account", "tax_code": "tax_code"}
REFERENCE_KIND_OF = {"item": "item", "revenue_account": "account", "tax_code": "tax_code"}


@dataclass(frozen=True)
class MappingProblem:
    kind: str  # the MappingRow kind that is missing or wrong, e.g. "tax_code"
    value: str  # the source value that found no (valid) mapping
    where: str  # e.g. "line 2", "payment method"
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value, "where": self.where, "message": self.message}


class MappingBlocked(Exception):
    def __init__(self, problems: Sequence[MappingProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(problem.message for problem in self.problems))


@dataclass(frozen=True)
class DestinationCustomer:
    id: str
    name: str = ""
    email: str = ""
    tax_number: str = ""


@dataclass(frozen=True)
class MappingTable:
    rows: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # kind -> source value -> target
    number_prefix: str = ""
    number_suffix: str = ""
    line_rules: Mapping[str, str] = field(default_factory=dict)  # line key -> required | taxed | optional
    # reference kind (account, tax_code, item) -> codes the destination has; a kind not fetched is absent
    known: Mapping[str, frozenset[str]] = field(default_factory=dict)
    customers: Sequence[DestinationCustomer] = ()

    def target(self, kind: str, value: str) -> str:
        by_source = self.rows.get(kind, {})
        return by_source.get(value) or by_source.get(DEFAULT, "")


def tax_key(rate: Decimal | None) -> str:
    """The source value a tax_code row is keyed by: 20.0000 -> "20", 17.5 -> "17.5", None -> "none"."""
    if rate is None:
        return "none"
    return format(rate.normalize(), "f")


def document_number(number: str, table: MappingTable) -> str:
    """The number as the destination shows it: prefix + number + suffix, so sources never collide."""
    return f"{table.number_prefix}{number}{table.number_suffix}"


def _checked(table: MappingTable, kind: str, value: str, where: str) -> tuple[str, MappingProblem | None]:
    target = table.target(kind, value)
    shown = value or "(empty)"
    if not target:
        return "", MappingProblem(
            kind, value, where, f"no {kind.replace('_', ' ')} mapping for {shown!s} ({where})"
        )
    reference_kind = REFERENCE_KIND_OF.get(kind)
    known = table.known.get(reference_kind) if reference_kind else None
    if known is not None and target not in known:
        return "", MappingProblem(
            kind,
            value,
            where,
            f"{kind.replace('_', ' ')} mapping for {shown} ({where}) points at {target!r}, "
            "which the destination does not have",
        )
    return target, None


def line_context(
    lines: Iterable[Any], table: MappingTable
) -> tuple[tuple[dict[str, str], ...], list[MappingProblem]]:
    """One dict per line with the destination keys the destination needs (item, account, tax_code)."""
    mapped: list[dict[str, str]] = []
    problems: list[MappingProblem] = []
    for index, line in enumerate(lines, start=1):
        entry: dict[str, str] = {}
        for key, rule in table.line_rules.items():
            kind = LINE_KINDS[key]
            if key == "tax_code" and line.tax_rate is None and line.tax_amount:
                problems.append(_untaxed_problem(line, f"line {index}"))
                continue
            value = tax_key(line.tax_rate) if key == "tax_code" else (line.item_code or "")
            needed = rule == "required" or (rule == "taxed" and line.tax_rate is not None)
            if not needed and not table.target(kind, value):
                continue
            target, problem = _checked(table, kind, value, f"line {index}")
            if problem:
                problems.append(problem)
            else:
                entry[key] = target
        mapped.append(entry)
    return tuple(mapped), problems


def _untaxed_problem(line: Any, where: str) -> MappingProblem:
    amount = line.tax_amount.normalize()
    if amount.as_tuple().exponent > -2:  # stored with four places whatever the currency: show two at least
        amount = amount.quantize(Decimal("0.01"))
    return MappingProblem(
        "tax_rate",
        tax_key(None),
        where,
        f"{where} carries tax {format(amount, 'f')} but no tax rate: the source sent tax without a rate, "
        "so it is held back rather than sent untaxed (set the rate at the source)",
    )


def deposit_account(method: str, table: MappingTable) -> tuple[str, MappingProblem | None]:
    return _checked(table, "payment_method", method or "", "payment method")


def customer_match(*, name: str, email: str, tax_number: str, table: MappingTable) -> tuple[str, str]:
    """The destination customer for a canonical customer: (id, how it was matched), or ("", "").

    An explicit customer mapping wins (keyed by email, tax number or name), then the destination's own
    customers by email, tax number and name, in that order, each only when it picks out one customer.
    """
    for value in (email.lower(), tax_number, name):
        if value and (target := table.rows.get("customer", {}).get(value)):
            return target, "mapping"
    checks = (
        ("email", email.lower(), lambda c: c.email.lower()),
        ("tax number", tax_number, lambda c: c.tax_number),
        ("name", name.casefold(), lambda c: c.name.casefold()),
    )
    for how, value, key in checks:
        if not value:
            continue
        found = {c.id for c in table.customers if key(c) == value}
        if len(found) == 1:
            return found.pop(), how
    return "", ""


def payload_diff(wanted: Any, current: Any, path: str = "") -> list[dict[str, Any]]:
    """What sending `wanted` would change in `current` (the destination's record as it is now).

    Only the keys the payload carries are compared; numbers compare by value (10 == 10.0 == "10.00").
    """
    if isinstance(wanted, dict):
        current_map = current if isinstance(current, dict) else {}
        changes: list[dict[str, Any]] = []
        for key, value in wanted.items():
            changes += payload_diff(value, current_map.get(key), f"{path}.{key}" if path else str(key))
        return changes
    if isinstance(wanted, list):
        current_list = current if isinstance(current, list) else []
        changes = []
        for index, value in enumerate(wanted):
            other = current_list[index] if index < len(current_list) else None
            changes += payload_diff(value, other, f"{path}[{index}]")
        if len(current_list) > len(wanted):
            changes.append(
                {"path": path, "now": f"{len(current_list)} items", "after": f"{len(wanted)} items"}
            )
        return changes
    if _same(wanted, current):
        return []
    return [{"path": path, "now": current, "after": wanted}]


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except (ArithmeticError, ValueError, TypeError):
        return str(a) == str(b)
