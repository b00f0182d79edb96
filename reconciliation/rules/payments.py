"""Payments and the invoices they settle: unmatched payments, and copies applied differently."""

from __future__ import annotations

from decimal import Decimal

from reconciliation.rules.base import (
    GONE,
    HIGH,
    PAYMENT,
    Copy,
    Document,
    Finding,
    Tolerances,
    amount_text,
    as_shown,
    jsonable,
    make_finding,
    money,
    text,
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
    return make_finding(
        "unmatched_payment",
        doc,
        None,
        tol,
        title=f"{doc.label} ({amount_text(doc.amount, doc.currency)}) matches no invoice",
        message="The payment is applied to no open invoice. Apply it at the source, or propose an override.",
        base_severity=HIGH,
        at_risk=doc.amount,
        connection_id=doc.source_connection_id,
        connection_name=doc.source_name,
        extra={"allocations": [jsonable(a) for a in doc.values.get("allocations") or ()]},
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
    return make_finding(
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
                {str(k): as_shown(v) for k, v in sorted(ours.items())},
                {
                    **{str(k): as_shown(v) for k, v in sorted(theirs.items())},
                    **{f"unknown {e}": None for e in unknown},
                },
            )
        },
    )
