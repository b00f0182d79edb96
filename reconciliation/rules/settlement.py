"""Status (paid here, unpaid there; void on one side only), dates and customers."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from reconciliation.rules.base import (
    AMOUNT_FIELD,
    CREDIT_NOTE,
    DATE_FIELDS,
    GONE,
    HIGH,
    INVOICE,
    LOW,
    MEDIUM,
    OUTSTANDING_FIELD,
    PAYMENT,
    Copy,
    Document,
    Finding,
    Tolerances,
    as_shown,
    day,
    make_finding,
    money,
    text,
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
        return make_finding(
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
        title = f"{doc.label}: {as_shown(settled_ours)} {verb} here, {as_shown(settled_theirs)} in {where}"
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
    return make_finding(
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
    shown = ", ".join(f"{name} {as_shown(a)} here, {as_shown(b)}" for name, (a, b) in fields.items())
    return make_finding(
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
    return make_finding(
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
