"""What every rule shares: the kinds, the values compared (`Document`, `Copy`), tolerances, severity and
the `Finding` a rule returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

# ReconciliationException.Kind values (kept as strings so the rules need no Django).
MISSING = "missing_in_destination"
DUPLICATE = "duplicate"
AMOUNT = "amount_mismatch"
TAX = "tax_mismatch"
CURRENCY = "currency_mismatch"
STATUS = "status_mismatch"
DATE = "date_mismatch"
CUSTOMER = "customer_mismatch"
UNMATCHED = "unmatched_payment"
KINDS = (MISSING, DUPLICATE, AMOUNT, TAX, CURRENCY, STATUS, DATE, CUSTOMER, UNMATCHED)

LOW, MEDIUM, HIGH, CRITICAL = "low", "medium", "high", "critical"
_LADDER = (LOW, MEDIUM, HIGH, CRITICAL)

INVOICE, PAYMENT, CREDIT_NOTE = "invoice", "payment", "credit_note"
OBJECT_TYPES = (INVOICE, PAYMENT, CREDIT_NOTE)
# SummaryPosting.Kind values: what a daily-summary profile posts instead of each document
SUMMARY_INVOICE, SUMMARY_CREDIT_NOTE, SUMMARY_PAYMENT = (
    "summary_invoice",
    "summary_credit_note",
    "summary_payment",
)
SUMMARY_KINDS = {INVOICE: SUMMARY_INVOICE, CREDIT_NOTE: SUMMARY_CREDIT_NOTE, PAYMENT: SUMMARY_PAYMENT}
LABELS = {
    INVOICE: "Invoice",
    PAYMENT: "Payment",
    CREDIT_NOTE: "Credit note",
    SUMMARY_INVOICE: "Summary invoice",
    SUMMARY_CREDIT_NOTE: "Summary credit note",
    SUMMARY_PAYMENT: "Summary payment",
}
AMOUNT_FIELD = {
    INVOICE: "total",
    PAYMENT: "amount",
    CREDIT_NOTE: "total",
    SUMMARY_INVOICE: "total",
    SUMMARY_CREDIT_NOTE: "total",
    SUMMARY_PAYMENT: "total",
}
DATE_FIELDS = {
    INVOICE: ("issue_date", "due_date"),
    PAYMENT: ("transaction_date",),
    CREDIT_NOTE: ("issue_date",),
}
# what one source never gives two documents: the number, and for payments the processor's transaction id
# (a Stripe charge or refund id; a payment intent, the payment reference, is shared by its retried charges)
SOURCE_KEY = {INVOICE: "number", CREDIT_NOTE: "number", PAYMENT: "processor_transaction_id"}
# what the document owes or holds after payments: compared by the status rule
OUTSTANDING_FIELD = {INVOICE: "amount_due", CREDIT_NOTE: "remaining_credit"}
GONE = {"void", "deleted", "failed"}
# rule name -> the kind of exception it opens
RULE_KINDS = {
    "missing": MISSING,
    "amount": AMOUNT,
    "tax": TAX,
    "currency": CURRENCY,
    "status": STATUS,
    "date": DATE,
    "customer": CUSTOMER,
    "allocation": UNMATCHED,
    "unmatched_payment": UNMATCHED,
    "duplicate_at_source": DUPLICATE,
    "duplicate_in_destination": DUPLICATE,
    # daily summaries: a member whose summary in the destination does not hold it as it is now, and a
    # summary whose totals are not its members'
    "summary_member": MISSING,
    "summary_total": AMOUNT,
}
# the rules that compare a known copy's values, per object type
VALUE_RULES = {
    INVOICE: ("amount", "tax", "currency", "status", "date", "customer"),
    CREDIT_NOTE: ("amount", "tax", "currency", "status", "date", "customer"),
    PAYMENT: ("amount", "currency", "status", "date", "customer", "allocation"),
}


@dataclass(frozen=True)
class Tolerances:
    """How far values may drift before they disagree, and how severity follows the amount at risk.

    `amount` is in the document's currency; `fx_percent` applies when a copy is in another currency or
    at another exchange rate; severity amounts are in the base currency (the document's currency when it
    cannot be converted).
    """

    amount: Decimal = Decimal("0.01")
    fx_percent: Decimal = Decimal("0.5")
    date_days: int = 0
    medium_amount: Decimal = Decimal("100")
    high_amount: Decimal = Decimal("1000")
    critical_amount: Decimal = Decimal("10000")
    base_currency: str = "GBP"


@dataclass(frozen=True)
class Document:
    """A canonical document: its snapshot-shaped `values` (plus, for a payment, each allocation's
    `invoice_status`) and whether destinations should hold a copy of it (`expected`)."""

    object_type: str
    object_id: int
    values: Mapping[str, Any]
    source_connection_id: int | None = None
    source_name: str = ""
    expected: bool = True

    @property
    def number(self) -> str:
        return str(self.values.get("reference" if self.object_type == PAYMENT else "number") or "")

    @property
    def label(self) -> str:
        return f"{LABELS.get(self.object_type, self.object_type)} {self.number or f'#{self.object_id}'}"

    @property
    def currency(self) -> str:
        return str(self.values.get("currency") or "")

    @property
    def amount(self) -> Decimal | None:
        return money(self.values.get(AMOUNT_FIELD[self.object_type]))


@dataclass(frozen=True)
class Hold:
    """Something on our side that keeps a document out of a destination: an open exception of the sync
    engine (`what` "exception", `kind` its kind) or an outbox operation (`what` "operation", `kind` its
    state), with its id and what it says."""

    what: str
    id: int
    kind: str
    text: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            self.what: self.id,
            "kind" if self.what == "exception" else "state": self.kind,
            "text": self.text,
        }

    @property
    def label(self) -> str:
        if self.what == "exception":
            return f"{self.kind.replace('_', ' ')} (exception #{self.id})"
        return f"outbox operation #{self.id} {self.kind.replace('_', ' ')}"


@dataclass(frozen=True)
class InSummary:
    """Where a document of a daily-summary profile stands on that profile's destination: the day and
    currency it belongs to and, once composed, the summary holding it (`summary_id`), whether that summary
    is there (`posted`), the versions the summary counted and posted, and whether the document changed
    after that (`changed_since_posted`; `recent`: too lately to judge yet)."""

    day: str
    currency: str
    summary_id: int | None = None
    number: str = ""
    posted: bool = False
    deleted: bool = False
    external_id: str = ""
    counted_version: int | None = None
    current_version: int | None = None
    summary_version: int | None = None
    posted_version: int | None = None
    changed_since_posted: bool = False
    recent: bool = False


@dataclass(frozen=True)
class Copy:
    """The document's copy on one connection. `bound` False: no binding there (yet); `expected` False:
    that connection is not meant to hold it (before the profile's cut-over date, say). `summary`: the
    connection holds it inside a daily summary, not one by one; `holds`: what keeps it out, when known."""

    connection_id: int
    connection_name: str
    values: Mapping[str, Any] = field(default_factory=dict)
    external_id: str = ""
    bound: bool = True
    deleted: bool = False
    expected: bool = True
    summary: InSummary | None = None
    holds: tuple[Hold, ...] = ()

    @property
    def known(self) -> bool:
        return self.bound and not self.deleted and bool(self.values)


@dataclass
class Finding:
    rule: str
    kind: str
    document: Document
    connection_id: int | None
    title: str
    message: str
    severity: str
    amount_at_risk: Decimal | None
    amount_at_risk_base: Decimal | None
    details: dict[str, Any]
    external_id: str = ""
    extra_identity: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[Any, ...]:
        doc = self.document
        return (self.kind, doc.object_type, doc.object_id, self.connection_id or "", *self.extra_identity)


# --- values -------------------------------------------------------------------------------------------
def money(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def day(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def text(value: Any) -> str:
    return "" if value is None else str(value)


def to_base(amount: Decimal | None, currency: str, rate: Any, base: str) -> Decimal | None:
    """`amount` in the base currency: times the document's exchange rate (base units per unit of the
    document's currency) when it has one; unknown without a rate, unless it already is the base currency."""
    if amount is None:
        return None
    rate_value = money(rate)
    if rate_value is not None and rate_value > 0:
        return (amount * rate_value).quantize(Decimal("0.0001"))
    return amount if currency.upper() == base.upper() else None


def severity(base: str, at_risk_base: Decimal | None, tol: Tolerances, *, by_amount: bool = False) -> str:
    """A kind's own severity, raised (never lowered) by the amount at risk; for kinds that are only about
    money (`by_amount`), the amount alone decides, from low up."""
    if at_risk_base is None:
        return base
    size = abs(at_risk_base)
    if size >= tol.critical_amount:
        by_size = CRITICAL
    elif size >= tol.high_amount:
        by_size = HIGH
    elif size >= tol.medium_amount:
        by_size = MEDIUM
    else:
        by_size = LOW
    if by_amount:
        return by_size
    return max(base, by_size, key=_LADDER.index)


def as_shown(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def make_finding(
    rule: str,
    doc: Document,
    copy: Copy | None,
    tol: Tolerances,
    *,
    title: str,
    message: str = "",
    base_severity: str = MEDIUM,
    at_risk: Decimal | None = None,
    by_amount: bool = False,
    fields: Mapping[str, tuple[Any, Any]] | None = None,
    connection_id: int | None = None,
    connection_name: str = "",
    extra: Mapping[str, Any] | None = None,
    extra_identity: tuple[str, ...] = (),
) -> Finding:
    """`fields`: name -> (canonical value, the copy's value). Details name each system and its value."""
    if at_risk is not None:
        at_risk = abs(at_risk)
    at_risk_base = to_base(at_risk, doc.currency, doc.values.get("exchange_rate"), tol.base_currency)
    where = copy.connection_name if copy is not None else connection_name
    details: dict[str, Any] = {"rule": rule}
    if copy is not None:
        details["connection"] = where
        details["connection_id"] = copy.connection_id
        details["external_id"] = copy.external_id
    if fields:
        details["fields"] = {
            name: {"canonical": as_shown(ours), "copies": {where: as_shown(theirs)}}
            for name, (ours, theirs) in fields.items()
        }
    details.update(extra or {})
    return Finding(
        rule=rule,
        kind=RULE_KINDS[rule],
        document=doc,
        connection_id=copy.connection_id if copy is not None else connection_id,
        title=title[:255],
        message=message,
        severity=severity(
            base_severity, at_risk_base if at_risk_base is not None else at_risk, tol, by_amount=by_amount
        ),
        amount_at_risk=at_risk,
        amount_at_risk_base=at_risk_base,
        details=details,
        external_id=copy.external_id if copy is not None else "",
        extra_identity=extra_identity,
    )


def amount_text(value: Decimal | None, currency: str) -> str:
    return f"{as_shown(value)} {currency}".strip() if value is not None else "no amount"


def jsonable(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: as_shown(value) for key, value in item.items()}
