"""Money: the total (a payment's amount), the exchange rate it was booked at, the tax, the currency."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from reconciliation.rules.base import (
    AMOUNT_FIELD,
    HIGH,
    PAYMENT,
    Copy,
    Document,
    Finding,
    Tolerances,
    amount_text,
    as_shown,
    make_finding,
    money,
    text,
)


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
        return make_finding(
            "amount",
            doc,
            copy,
            tol,
            title=f"{doc.label}: {name} {amount_text(ours, doc.currency)} here, "
            f"{amount_text(theirs, theirs_currency)} in {copy.connection_name}",
            message=f"The {name} differs by {amount_text(abs(difference), doc.currency)}.",
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
    return make_finding(
        "amount",
        doc,
        copy,
        tol,
        title=f"{doc.label}: booked at rate {as_shown(theirs)} in {copy.connection_name}, "
        f"{as_shown(ours)} here",
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
    return make_finding(
        "tax",
        doc,
        copy,
        tol,
        title=f"{doc.label}: tax {amount_text(ours, doc.currency)} here, {as_shown(theirs)} in "
        f"{copy.connection_name}",
        message=f"The tax differs by {amount_text(abs(difference), doc.currency)}: check the tax mapping.",
        at_risk=difference,
        by_amount=True,
        fields={"tax_total": (ours, theirs)},
    )


def currency(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    theirs = text(copy.values.get("currency")).upper() if copy.known else ""
    if not theirs or theirs == doc.currency.upper():
        return None
    return make_finding(
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


# --- daily summaries ----------------------------------------------------------------------------------
def summary_total(
    summary: Document, members: Mapping[str, Decimal], copy: Copy, tol: Tolerances
) -> Finding | None:
    """A posted daily summary whose totals are not the sum of its members as they are now: as composed
    here (a member changed, left or joined since), or as the destination holds it (its snapshot, when
    known). `summary.values` holds the composed "total" (and "tax_total"); `members` the members' sums
    under the same names; `copy` is the summary's binding on the destination."""
    where = copy.connection_name
    theirs_known = copy.known and text(copy.values.get("currency")).upper() in ("", summary.currency.upper())
    fields: dict[str, Any] = {}
    gap = Decimal(0)
    composed_off = theirs_off = False
    for name in ("total", "tax_total"):
        expected = members.get(name)
        if expected is None:
            continue
        composed = money(summary.values.get(name))
        theirs = money(copy.values.get(name)) if theirs_known else None
        off = {
            side: value - expected
            for side, value in (("composed", composed), (where, theirs))
            if value is not None and abs(value - expected) > tol.amount
        }
        if not off:
            continue
        composed_off = composed_off or "composed" in off
        theirs_off = theirs_off or where in off
        gap = max(gap, *(abs(value) for value in off.values()))
        copies = {"composed": as_shown(composed)}
        if theirs is not None:
            copies[where] = as_shown(theirs)
        fields[name] = {"canonical": as_shown(expected), "copies": copies}
    if not fields:
        return None
    total = members.get("total")
    shown = [f"{as_shown(money(summary.values.get('total')))} composed"]
    if theirs_known:
        shown.append(f"{as_shown(money(copy.values.get('total')))} in {where}")
    if composed_off:
        message = (
            "A member changed, left or joined since the summary was composed: the next push composes it "
            f"again and posts it to {where}."
        )
    else:
        message = (
            f"{where} does not hold what was posted: someone changed the summary there. Compare the two, "
            "then post it again or correct it by hand."
        )
    return make_finding(
        "summary_total",
        summary,
        copy,
        tol,
        title=f"{summary.label}: members add up to {amount_text(total, summary.currency)}, "
        + ", ".join(shown),
        message=message,
        at_risk=gap,
        by_amount=True,
        extra={"fields": fields, "members": int(summary.values.get("member_count") or 0)},
    )
