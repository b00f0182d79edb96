"""Reconciliation rules: pure functions over snapshots, one per kind of finding.

A canonical document (`Document`) is compared with each of its copies (`Copy`: the binding's snapshot on
one connection, shape in sync/snapshots.py). Values may be native (Decimal, date) or as snapshots store
them (decimal strings, ISO dates); `{}` means the copy's values are not known yet, so only its presence is
checked. Nothing here touches the database or settings: the run (reconciliation/checks.py) loads the rows
and writes the findings.

Each rule returns a `Finding` or None. A finding's `identity` (kind, object type and id, connection id and,
for a duplicate, the other record's id) never holds a value that changes, so a re-run finds it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
LABELS = {INVOICE: "Invoice", PAYMENT: "Payment", CREDIT_NOTE: "Credit note"}
AMOUNT_FIELD = {INVOICE: "total", PAYMENT: "amount", CREDIT_NOTE: "total"}
DATE_FIELDS = {
    INVOICE: ("issue_date", "due_date"),
    PAYMENT: ("transaction_date",),
    CREDIT_NOTE: ("issue_date",),
}
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
class Copy:
    """The document's copy on one connection. `bound` False: no binding there (yet); `expected` False:
    that connection is not meant to hold it (before the profile's cut-over date, say)."""

    connection_id: int
    connection_name: str
    values: Mapping[str, Any] = field(default_factory=dict)
    external_id: str = ""
    bound: bool = True
    deleted: bool = False
    expected: bool = True

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


def _shown(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _finding(
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
            name: {"canonical": _shown(ours), "copies": {where: _shown(theirs)}}
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


# --- presence -----------------------------------------------------------------------------------------
def missing(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    """Expected in a destination that has no live copy of it (never written, or deleted there)."""
    if not (doc.expected and copy.expected) or (copy.bound and not copy.deleted):
        return None
    how = "was deleted in" if copy.bound else "is missing in"
    return _finding(
        "missing",
        doc,
        copy,
        tol,
        title=f"{doc.label} {how} {copy.connection_name}",
        message=f"{doc.label} ({_amount_text(doc.amount, doc.currency)}) has no live copy in "
        f"{copy.connection_name}. Check the outbox and the job log for this document, or re-push it.",
        base_severity=HIGH,
        at_risk=doc.amount,
    )


# --- money --------------------------------------------------------------------------------------------
def _amount_text(value: Decimal | None, currency: str) -> str:
    return f"{_shown(value)} {currency}".strip() if value is not None else "no amount"


def _compare_money(
    doc: Document, copy: Copy, name: str, tol: Tolerances
) -> tuple[Decimal, Decimal, Decimal] | None:
    """(canonical, the copy's, difference in the document's currency) when they disagree beyond the
    tolerance; None when they agree or cannot be compared (a copy in another currency without a rate)."""
    ours, theirs = money(doc.values.get(name)), money(copy.values.get(name))
    if ours is None or theirs is None:
        return None
    doc_currency = doc.currency.upper()
    copy_currency = text(copy.values.get("currency")).upper() or doc_currency
    if copy_currency == doc_currency:
        difference = ours - theirs
        return (ours, theirs, difference) if abs(difference) > tol.amount else None
    # a copy in another currency: convert through a rate to the base currency, within the FX tolerance
    base = tol.base_currency.upper()
    doc_rate = money(doc.values.get("exchange_rate"))
    copy_rate = money(copy.values.get("exchange_rate"))
    if copy_currency == base and (doc_rate or copy_rate):
        # the copy was booked in the base currency: the document's amount at its rate
        per_unit = doc_rate or copy_rate
        expected, actual = ours * per_unit, theirs  # type: ignore[operator]
    elif doc_currency == base and copy_rate:
        # the copy is in a foreign currency with its rate to the base currency
        per_unit = Decimal(1)
        expected, actual = ours, theirs * copy_rate
    else:
        return None
    allowed = max(tol.amount, abs(expected) * tol.fx_percent / 100)
    if abs(expected - actual) <= allowed:
        return None
    return ours, theirs, (expected - actual) / per_unit  # type: ignore[operator]


def amount(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    """The total (a payment's amount) differs; for a document in a foreign currency, also the exchange
    rate it was booked at, beyond the FX tolerance."""
    if not copy.known:
        return None
    name = AMOUNT_FIELD[doc.object_type]
    compared = _compare_money(doc, copy, name, tol)
    if compared is not None:
        ours, theirs, difference = compared
        theirs_currency = text(copy.values.get("currency")) or doc.currency
        return _finding(
            "amount",
            doc,
            copy,
            tol,
            title=f"{doc.label}: {name} {_amount_text(ours, doc.currency)} here, "
            f"{_amount_text(theirs, theirs_currency)} in {copy.connection_name}",
            message=f"The {name} differs by {_amount_text(abs(difference), doc.currency)}.",
            at_risk=difference,
            by_amount=True,
            fields={name: (ours, theirs)},
        )
    return _rate(doc, copy, tol)


def _rate(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    ours, theirs = money(doc.values.get("exchange_rate")), money(copy.values.get("exchange_rate"))
    total = doc.amount
    if not ours or not theirs or total is None:
        return None
    if text(copy.values.get("currency")).upper() not in ("", doc.currency.upper()):
        return None
    if abs(ours - theirs) <= abs(ours) * tol.fx_percent / 100:
        return None
    at_risk = total * abs(ours - theirs) / ours  # the base-currency gap, in the document's currency
    return _finding(
        "amount",
        doc,
        copy,
        tol,
        title=f"{doc.label}: booked at rate {_shown(theirs)} in {copy.connection_name}, {_shown(ours)} here",
        message=f"The exchange rate differs by more than {tol.fx_percent}%: the amount in "
        f"{tol.base_currency} differs.",
        at_risk=at_risk,
        by_amount=True,
        fields={"exchange_rate": (ours, theirs)},
    )


def tax(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    if not copy.known or doc.object_type == PAYMENT:
        return None
    compared = _compare_money(doc, copy, "tax_total", tol)
    if compared is None:
        return None
    ours, theirs, difference = compared
    return _finding(
        "tax",
        doc,
        copy,
        tol,
        title=f"{doc.label}: tax {_amount_text(ours, doc.currency)} here, {_shown(theirs)} in "
        f"{copy.connection_name}",
        message=f"The tax differs by {_amount_text(abs(difference), doc.currency)}: check the tax mapping.",
        at_risk=difference,
        by_amount=True,
        fields={"tax_total": (ours, theirs)},
    )


def currency(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    theirs = text(copy.values.get("currency")).upper() if copy.known else ""
    if not theirs or theirs == doc.currency.upper():
        return None
    return _finding(
        "currency",
        doc,
        copy,
        tol,
        title=f"{doc.label}: {doc.currency} here, {theirs} in {copy.connection_name}",
        message="The copy is in another currency: its receivable and any exchange gains or losses are wrong.",
        base_severity=HIGH,
        at_risk=doc.amount,
        fields={"currency": (doc.currency, theirs)},
    )


# --- status -------------------------------------------------------------------------------------------
_SETTLEMENT = {
    INVOICE: {"draft": "unpaid", "open": "unpaid", "partially_paid": "partially paid", "paid": "paid"},
    CREDIT_NOTE: {
        "draft": "unapplied",
        "open": "unapplied",
        "partially_applied": "partially applied",
        "applied": "applied",
    },
    PAYMENT: {"pending": "pending", "completed": "completed"},
}


def _state(object_type: str, status: str) -> str:
    if status in GONE:
        return "void"
    return _SETTLEMENT[object_type].get(status, status)


def _settled(
    object_type: str, values: Mapping[str, Any], total: Decimal | None, due: Decimal | None
) -> Decimal | None:
    """What was paid (an invoice) or applied (a credit note): stated, else the total less what is due."""
    paid = money(values.get("amount_paid")) if object_type == INVOICE else None
    if paid is not None:
        return paid
    return total - due if total is not None and due is not None else None


def status(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    """Paid (applied, completed) here and not there, or the reverse, or what is still due differs.

    Draft and open count as one state: most ledgers have no drafts.
    """
    if not copy.known:
        return None
    ours_status, theirs_status = text(doc.values.get("status")), text(copy.values.get("status"))
    if not theirs_status:
        return None
    ours, theirs = _state(doc.object_type, ours_status), _state(doc.object_type, theirs_status)
    due_field = OUTSTANDING_FIELD.get(doc.object_type)
    due_ours = money(doc.values.get(due_field)) if due_field else None
    due_theirs = money(copy.values.get(due_field)) if due_field else None
    # what was paid (applied) on each side: a total that differs is the amount rule's finding, not this one
    total = doc.amount
    total_theirs = money(copy.values.get(AMOUNT_FIELD[doc.object_type])) or total
    settled_ours = _settled(doc.object_type, doc.values, total, due_ours)
    settled_theirs = _settled(doc.object_type, copy.values, total_theirs, due_theirs)
    same_currency = text(copy.values.get("currency")).upper() in ("", doc.currency.upper())
    settled_differs = (
        settled_ours is not None
        and settled_theirs is not None
        and same_currency
        and abs(settled_ours - settled_theirs) > tol.amount
    )
    if ours == theirs and not settled_differs:
        return None
    fields: dict[str, tuple[Any, Any]] = {"status": (ours_status, theirs_status)}
    if due_field and (due_ours is not None or due_theirs is not None):
        fields[due_field] = (due_ours, due_theirs)
    where = copy.connection_name
    if "void" in (ours, theirs) and ours != theirs:
        live_total = (
            total if ours != "void" else money(copy.values.get(AMOUNT_FIELD[doc.object_type])) or total
        )
        title = (
            f"{doc.label} is void here, still {theirs} in {where}"
            if ours == "void"
            else f"{doc.label} is {ours} here, void in {where}"
        )
        return _finding(
            "status",
            doc,
            copy,
            tol,
            title=title,
            base_severity=HIGH,
            at_risk=live_total,
            message="One side still counts this document; the other has cancelled it.",
            fields=fields,
        )
    at_risk = settled_ours - settled_theirs if settled_differs else None  # type: ignore[operator]
    if doc.object_type == PAYMENT:
        title = f"{doc.label} is {ours} here, {theirs} in {where}"
        at_risk = total
    elif ours == theirs:
        verb = "paid" if doc.object_type == INVOICE else "applied"
        title = f"{doc.label}: {_shown(settled_ours)} {verb} here, {_shown(settled_theirs)} in {where}"
    elif ours in ("paid", "applied"):
        title = f"{doc.label} is {ours} here, {theirs} in {where}"
        if at_risk is None:
            at_risk = total
    elif theirs in ("paid", "applied"):
        title = f"{doc.label} is {ours} here, recorded as {theirs} in {where}"
        if at_risk is None:
            at_risk = due_ours if due_ours is not None else total
    else:
        title = f"{doc.label} is {ours} here, {theirs} in {where}"
    message = {
        ("paid", "unpaid"): "Paid at the source, still unpaid in the ledger: the customer may be chased "
        "for money already received.",
        ("paid", "partially paid"): "Paid at the source, only partly paid in the ledger.",
        ("partially paid", "paid"): "Partially paid at the source, recorded as paid in the ledger: money "
        "still owed is not being collected.",
        ("unpaid", "paid"): "Unpaid at the source, recorded as paid in the ledger.",
    }.get((ours, theirs), "The status or the amount still due differs.")
    return _finding(
        "status",
        doc,
        copy,
        tol,
        title=title,
        message=message,
        base_severity=HIGH,
        at_risk=at_risk,
        fields=fields,
    )


# --- dates and customers ------------------------------------------------------------------------------
def dates(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    if not copy.known:
        return None
    fields: dict[str, tuple[Any, Any]] = {}
    other_period = False
    for name in DATE_FIELDS[doc.object_type]:
        if name not in copy.values:
            continue
        ours, theirs = day(doc.values.get(name)), day(copy.values.get(name))
        if ours is None and theirs is None:
            continue
        if ours is not None and theirs is not None and abs((ours - theirs).days) <= tol.date_days:
            continue
        fields[name] = (ours, theirs)
        if ours is None or theirs is None or (ours.year, ours.month) != (theirs.year, theirs.month):
            other_period = True
    if not fields:
        return None
    shown = ", ".join(f"{name} {_shown(a)} here, {_shown(b)}" for name, (a, b) in fields.items())
    return _finding(
        "date",
        doc,
        copy,
        tol,
        title=f"{doc.label}: {shown} in {copy.connection_name}",
        message="A date differs" + (" and falls in another month (period)." if other_period else "."),
        base_severity=MEDIUM if other_period else LOW,
        fields=fields,
    )


def _customer_form(value: Any) -> tuple[str, bool]:
    key = " ".join(text(value).split()).lower()
    return key, "@" in key


def customer(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    """Compared only like with like (an email with an email, a name with a name): a ledger customer
    without an email is named differently, not a different customer."""
    if not copy.known or "customer" not in copy.values:
        return None
    ours, ours_email = _customer_form(doc.values.get("customer"))
    theirs, theirs_email = _customer_form(copy.values.get("customer"))
    if not ours or not theirs or ours_email != theirs_email or ours == theirs:
        return None
    return _finding(
        "customer",
        doc,
        copy,
        tol,
        title=f"{doc.label}: customer {doc.values.get('customer')} here, {copy.values.get('customer')} in "
        f"{copy.connection_name}",
        message="The document belongs to another customer there: statements and reminders go to the wrong "
        "customer.",
        base_severity=HIGH,
        at_risk=doc.amount,
        fields={"customer": (doc.values.get("customer"), copy.values.get("customer"))},
    )


# --- payments and invoices ----------------------------------------------------------------------------
def live_allocations(doc: Document) -> dict[int, Decimal]:
    """Canonical invoice id -> amount, for allocations to invoices that are not void or deleted."""
    result: dict[int, Decimal] = {}
    for item in doc.values.get("allocations") or ():
        invoice_id, value = item.get("invoice_id"), money(item.get("amount"))
        if invoice_id is None or value is None or text(item.get("invoice_status")) in GONE:
            continue
        result[int(invoice_id)] = result.get(int(invoice_id), Decimal(0)) + value
    return result


def unmatched_payment(doc: Document, tol: Tolerances) -> Finding | None:
    """A completed payment applied to no live invoice (none at all, or only void and deleted ones)."""
    if doc.object_type != PAYMENT or text(doc.values.get("status")) != "completed":
        return None
    if live_allocations(doc):
        return None
    return _finding(
        "unmatched_payment",
        doc,
        None,
        tol,
        title=f"{doc.label} ({_amount_text(doc.amount, doc.currency)}) matches no invoice",
        message="The payment is applied to no open invoice. Apply it at the source, or propose an override.",
        base_severity=HIGH,
        at_risk=doc.amount,
        connection_id=doc.source_connection_id,
        connection_name=doc.source_name,
        extra={"allocations": [_jsonable(a) for a in doc.values.get("allocations") or ()]},
    )


def allocation(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    """The copy of a payment is applied to other invoices, other amounts, or none at all."""
    if doc.object_type != PAYMENT or not copy.known or "allocations" not in copy.values:
        return None
    ours = live_allocations(doc)
    if not ours:
        return None  # an unmatched payment is the document's finding, not each copy's
    theirs: dict[int, Decimal] = {}
    unknown: list[str] = []
    for item in copy.values.get("allocations") or ():
        value = money(item.get("amount")) or Decimal(0)
        if item.get("invoice_id") is None:
            unknown.append(text(item.get("external_id")) or "?")
            continue
        theirs[int(item["invoice_id"])] = theirs.get(int(item["invoice_id"]), Decimal(0)) + value
    at_risk = sum(
        (abs(value - theirs.get(invoice, Decimal(0))) for invoice, value in ours.items()), Decimal(0)
    )
    if at_risk <= tol.amount and not unknown:
        return None
    where = copy.connection_name
    title = (
        f"{doc.label} is not applied to any invoice in {where}"
        if not theirs
        else f"{doc.label} is applied differently in {where}"
    )
    return _finding(
        "allocation",
        doc,
        copy,
        tol,
        title=title,
        message="The ledger's copy of the payment does not settle the same invoices: one of them still "
        "shows as due there.",
        base_severity=HIGH,
        at_risk=at_risk or doc.amount,
        fields={
            "allocations": (
                {str(k): _shown(v) for k, v in sorted(ours.items())},
                {
                    **{str(k): _shown(v) for k, v in sorted(theirs.items())},
                    **{f"unknown {e}": None for e in unknown},
                },
            )
        },
    )


def _jsonable(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _shown(value) for key, value in item.items()}


# --- duplicates ---------------------------------------------------------------------------------------
def duplicate_at_source(doc: Document, earlier: Sequence[int], tol: Tolerances) -> Finding | None:
    """The same number from the same source on more than one canonical document: the later ones are the
    duplicates (`earlier`: ids of the documents with this number that came first)."""
    if not earlier or not doc.number:
        return None
    others = ", ".join(f"#{pk}" for pk in earlier)
    source = doc.source_name or "its source"
    return _finding(
        "duplicate_at_source",
        doc,
        None,
        tol,
        title=f"{doc.label} came twice from {source} (also {others})",
        message="Two documents from one source carry the same number: one of them is probably a duplicate "
        "and is counted twice wherever it was sent.",
        base_severity=HIGH,
        at_risk=doc.amount,
        connection_id=doc.source_connection_id,
        connection_name=source,
        extra={"duplicate_of": list(earlier), "connection": source},
    )


def duplicate_in_destination(
    doc: Document, copy: Copy, record: Mapping[str, Any], tol: Tolerances
) -> Finding:
    """A record in a destination that duplicates the document's bound copy there (found by the mirror)."""
    external_id = text(record.get("external_id"))
    at_risk = money(record.get("total")) or money(record.get("amount")) or doc.amount
    return _finding(
        "duplicate_in_destination",
        doc,
        copy,
        tol,
        title=f"{doc.label} is in {copy.connection_name} twice ({copy.external_id} and {external_id})",
        message="The destination holds a second record for this document: it is counted twice there. Void "
        "the one that is not bound.",
        base_severity=HIGH,
        at_risk=at_risk,
        extra={"duplicate": _jsonable(record)},
        extra_identity=(external_id,),
    )


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


def _agrees(doc: Document, copy: Copy) -> bool:
    """The common case, decided by comparing strings: most copies hold exactly what was sent."""
    keys = AGREEING_KEYS.get(doc.object_type)
    if keys is None:
        return False
    ours, theirs = doc.values, copy.values
    return all(key in theirs and ours.get(key) == theirs[key] for key in keys)


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
    if source_duplicates_checked and doc.object_type != PAYMENT:
        checked.judge(doc.source_connection_id, "duplicate_at_source", duplicate_at_source(doc, earlier, tol))
    for copy in copies:
        # an unmatched payment is never pushed: its own finding says why it is not in the destination
        checked.judge(copy.connection_id, "missing", missing(doc, copy, tol) if unmatched is None else None)
        if copy.known:
            clean = _agrees(doc, copy)
            for rule in VALUE_RULES[doc.object_type]:
                checked.judge(copy.connection_id, rule, None if clean else COPY_RULES[rule](doc, copy, tol))
        if copy.connection_id in read_in_full:
            checked.judged.setdefault(copy.connection_id, set()).add("duplicate_in_destination")
        if copy.bound:
            for record in (destination_duplicates or {}).get(copy.connection_id, ()):
                checked.findings.append(duplicate_in_destination(doc, copy, record, tol))
    return checked
