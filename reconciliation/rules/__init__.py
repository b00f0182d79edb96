"""Reconciliation rules: pure functions over snapshots, one per kind of finding.

A canonical document (`Document`) is compared with each of its copies (`Copy`: the binding's snapshot on
one connection, shape in sync/snapshots.py). Values may be native (Decimal, date) or as snapshots store
them (decimal strings, ISO dates); `{}` means the copy's values are not known yet, so only its presence is
checked. A document of a daily-summary profile has no copy of its own there: its `Copy.summary` says which
summary holds it. Nothing here touches the database or settings: the run (reconciliation/checks/) loads
the rows and writes the findings.

Each rule returns a `Finding` or None. A finding's `identity` (kind, object type and id, connection id and,
for a duplicate, the other record's id) never holds a value that changes, so a re-run finds it again.

Modules by family: `base` (kinds, values, severity), `presence` (missing, duplicates, a daily summary's
members), `amounts` (amount, rate, tax, currency, a daily summary's totals), `settlement` (status, dates,
customer), `payments` (allocations), `document` (every rule for one document).
"""

from reconciliation.rules.amounts import amount, currency, summary_total, tax
from reconciliation.rules.base import (
    AMOUNT,
    AMOUNT_FIELD,
    CREDIT_NOTE,
    CRITICAL,
    CURRENCY,
    CUSTOMER,
    DATE,
    DATE_FIELDS,
    DUPLICATE,
    GONE,
    HIGH,
    INVOICE,
    KINDS,
    LABELS,
    LOW,
    MEDIUM,
    MISSING,
    OBJECT_TYPES,
    OUTSTANDING_FIELD,
    PAYMENT,
    RULE_KINDS,
    SOURCE_KEY,
    STATUS,
    SUMMARY_CREDIT_NOTE,
    SUMMARY_INVOICE,
    SUMMARY_KINDS,
    SUMMARY_PAYMENT,
    TAX,
    UNMATCHED,
    VALUE_RULES,
    Copy,
    Document,
    Finding,
    Hold,
    InSummary,
    Tolerances,
    day,
    money,
    severity,
    text,
    to_base,
)
from reconciliation.rules.document import AGREEING_KEYS, COPY_RULES, Checked, document_check
from reconciliation.rules.payments import allocation, live_allocations, unmatched_payment
from reconciliation.rules.presence import (
    duplicate_at_source,
    duplicate_in_destination,
    missing,
    summary_member,
)
from reconciliation.rules.settlement import customer, dates, status

__all__ = [
    "AGREEING_KEYS",
    "AMOUNT",
    "AMOUNT_FIELD",
    "COPY_RULES",
    "CREDIT_NOTE",
    "CRITICAL",
    "CURRENCY",
    "CUSTOMER",
    "DATE",
    "DATE_FIELDS",
    "DUPLICATE",
    "GONE",
    "HIGH",
    "INVOICE",
    "KINDS",
    "LABELS",
    "LOW",
    "MEDIUM",
    "MISSING",
    "OBJECT_TYPES",
    "OUTSTANDING_FIELD",
    "PAYMENT",
    "RULE_KINDS",
    "SOURCE_KEY",
    "STATUS",
    "SUMMARY_CREDIT_NOTE",
    "SUMMARY_INVOICE",
    "SUMMARY_KINDS",
    "SUMMARY_PAYMENT",
    "TAX",
    "UNMATCHED",
    "VALUE_RULES",
    "Checked",
    "Copy",
    "Document",
    "Finding",
    "Hold",
    "InSummary",
    "Tolerances",
    "allocation",
    "amount",
    "currency",
    "customer",
    "dates",
    "day",
    "document_check",
    "duplicate_at_source",
    "duplicate_in_destination",
    "live_allocations",
    "missing",
    "money",
    "severity",
    "status",
    "summary_member",
    "summary_total",
    "tax",
    "text",
    "to_base",
    "unmatched_payment",
]
