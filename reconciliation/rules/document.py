"""One document against its copies: every rule that applies, and what each judged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from reconciliation.rules.amounts import amount, currency, tax
from reconciliation.rules.base import (
    CREDIT_NOTE,
    INVOICE,
    PAYMENT,
    VALUE_RULES,
    Copy,
    Document,
    Finding,
    Tolerances,
)
from reconciliation.rules.payments import allocation, unmatched_payment
from reconciliation.rules.presence import (
    duplicate_at_source,
    duplicate_in_destination,
    missing,
    summary_member,
)
from reconciliation.rules.settlement import customer, dates, status

# --- one document -------------------------------------------------------------------------------------
COPY_RULES = {
    "amount": amount,
    "tax": tax,
    "currency": currency,
    "status": status,
    "date": dates,
    "customer": customer,
    "allocation": allocation,
}


@dataclass
class Checked:
    """What a document's check found, and which rules it judged on which connection (a rule that could
    not judge, e.g. on a copy whose values are unknown, must not resolve what it found before)."""

    findings: list[Finding] = field(default_factory=list)
    judged: dict[int | None, set[str]] = field(default_factory=dict)

    def judge(self, connection_id: int | None, rule: str, finding: Finding | None) -> None:
        self.judged.setdefault(connection_id, set()).add(rule)
        if finding is not None:
            self.findings.append(finding)


# the values that, when a copy holds exactly the document's (in snapshot form), leave no rule anything to find
AGREEING_KEYS = {
    INVOICE: (
        "currency",
        "total",
        "tax_total",
        "amount_paid",
        "amount_due",
        "status",
        "issue_date",
        "due_date",
        "customer",
        "exchange_rate",
    ),
    CREDIT_NOTE: ("currency", "total", "tax_total", "remaining_credit", "status", "issue_date", "customer"),
}


_AGREEING = {object_type: itemgetter(*keys) for object_type, keys in AGREEING_KEYS.items()}


def _agrees(doc: Document, copy: Copy) -> bool:
    """The common case, decided by comparing strings: most copies hold exactly what was sent."""
    values = _AGREEING.get(doc.object_type)
    if values is None:
        return False
    try:
        return bool(values(doc.values) == values(copy.values))
    except KeyError:  # a value the copy does not state: the rules decide
        return False


def document_check(
    doc: Document,
    copies: Iterable[Copy],
    tol: Tolerances,
    *,
    earlier: Sequence[int] = (),
    source_duplicates_checked: bool = True,
    destination_duplicates: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    duplicates_read_in_full: Iterable[int] = (),
) -> Checked:
    """Every rule for one document and its copies. `destination_duplicates`: connection id -> records
    there duplicating this document; `duplicates_read_in_full`: connections whose records were all read
    this run, so a duplicate found before and not reported now is gone (an incremental read sees only
    what changed, and judges nothing about the rest)."""
    checked = Checked()
    read_in_full = set(duplicates_read_in_full)
    unmatched = unmatched_payment(doc, tol) if doc.object_type == PAYMENT else None
    if doc.object_type == PAYMENT:
        checked.judge(doc.source_connection_id, "unmatched_payment", unmatched)
    if source_duplicates_checked:
        checked.judge(doc.source_connection_id, "duplicate_at_source", duplicate_at_source(doc, earlier, tol))
    for copy in copies:
        # an unmatched payment is never pushed: its own finding says why it is not in the destination
        checked.judge(copy.connection_id, "missing", missing(doc, copy, tol) if unmatched is None else None)
        if copy.summary is not None and not copy.summary.recent:
            # a change too recent to have reached the next push judges nothing yet
            checked.judge(copy.connection_id, "summary_member", summary_member(doc, copy, tol))
        if copy.known:
            if _agrees(doc, copy):
                checked.judged.setdefault(copy.connection_id, set()).update(VALUE_RULES[doc.object_type])
            else:
                for rule in VALUE_RULES[doc.object_type]:
                    checked.judge(copy.connection_id, rule, COPY_RULES[rule](doc, copy, tol))
        if copy.connection_id in read_in_full:
            checked.judged.setdefault(copy.connection_id, set()).add("duplicate_in_destination")
        if copy.bound:
            for record in (destination_duplicates or {}).get(copy.connection_id, ()):
                checked.findings.append(duplicate_in_destination(doc, copy, record, tol))
    return checked
