"""Presence: missing in a destination (one by one, or in a daily summary) and duplicates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciliation.rules.base import (
    HIGH,
    PAYMENT,
    SOURCE_KEY,
    Copy,
    Document,
    Finding,
    Hold,
    Tolerances,
    amount_text,
    jsonable,
    make_finding,
    money,
    text,
)


# --- presence -----------------------------------------------------------------------------------------
def _held(holds: Sequence[Hold]) -> tuple[str, str, dict[str, Any]]:
    """(title suffix, message, details) naming what keeps the document out, so the fix is one click away."""
    if not holds:
        return "", "Check the outbox and the job log for this document, or re-push it.", {}
    said = "; ".join(f"{hold.label}: {hold.text}" if hold.text else hold.label for hold in holds)
    return (
        f": held back by {holds[0].label}",
        f"Held back by {said}. Fix that, and the next push sends it.",
        {"held_by": [hold.as_dict() for hold in holds]},
    )


def missing(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    """Expected in a destination that has no live copy of it (never written, or deleted there); for a
    daily-summary profile, in no summary there. Names what holds it back when the outbox or an open
    exception says (`copy.holds`)."""
    if copy.summary is not None:
        return _missing_from_summary(doc, copy, tol)
    if not (doc.expected and copy.expected) or (copy.bound and not copy.deleted):
        return None
    how = "was deleted in" if copy.bound else "is missing in"
    suffix, advice, extra = _held(copy.holds)
    return make_finding(
        "missing",
        doc,
        copy,
        tol,
        title=f"{doc.label} {how} {copy.connection_name}{suffix}",
        message=f"{doc.label} ({amount_text(doc.amount, doc.currency)}) has no live copy in "
        f"{copy.connection_name}. {advice}",
        base_severity=HIGH,
        at_risk=doc.amount,
        extra=extra,
    )


def _missing_from_summary(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    held = copy.summary
    assert held is not None
    if not (doc.expected and copy.expected) or held.posted:
        return None
    where = copy.connection_name
    day = f"{held.day} ({held.currency})"
    if held.summary_id is None:
        title = f"{doc.label} of {day} is in no daily summary posted to {where}"
        what = f"The day is closed, and no daily summary to {where} counts it."
    elif held.deleted:
        title = f"{doc.label}: its daily summary {held.number} was deleted in {where}"
        what = f"It is counted in daily summary {held.number} of {day}, which {where} no longer holds."
    else:
        title = f"{doc.label}: its daily summary {held.number} is not in {where}"
        what = f"It is counted in daily summary {held.number} of {day}, which was never posted to {where}."
    suffix, advice, extra = _held(copy.holds)
    return make_finding(
        "missing",
        doc,
        copy,
        tol,
        title=f"{title}{suffix}",
        message=f"{doc.label} ({amount_text(doc.amount, doc.currency)}) is not in the books of {where}. "
        f"{what} {advice}",
        base_severity=HIGH,
        at_risk=doc.amount,
        extra={"summary": _summary_details(copy), **extra},
    )


def _summary_details(copy: Copy) -> dict[str, Any]:
    held = copy.summary
    assert held is not None
    details: dict[str, Any] = {"day": held.day, "currency": held.currency}
    if held.summary_id is not None:
        details.update(
            id=held.summary_id,
            number=held.number,
            external_id=held.external_id,
            counted_version=held.counted_version,
            document_version=held.current_version,
            summary_version=held.summary_version,
            posted_version=held.posted_version,
        )
    return details


def summary_member(doc: Document, copy: Copy, tol: Tolerances) -> Finding | None:
    """In a daily summary the destination holds, but not as it is now: the document changed (or joined)
    after that summary was posted. Found until the summary is posted again at its current version."""
    held = copy.summary
    if held is None or not held.posted or held.summary_id is None:
        return None
    not_recounted = held.counted_version is not None and held.counted_version != held.current_version
    not_reposted = (
        held.posted_version is not None
        and held.summary_version is not None
        and held.posted_version < held.summary_version
        and held.changed_since_posted
    )
    if not (not_recounted or not_reposted):
        return None
    where = copy.connection_name
    suffix, advice, extra = _held(copy.holds)
    if not_recounted:
        what = (
            f"It changed after daily summary {held.number} was composed (version {held.counted_version} "
            f"counted, now {held.current_version})"
        )
    else:
        what = (
            f"Daily summary {held.number} changed with it (version {held.summary_version}) and {where} "
            f"still holds version {held.posted_version}"
        )
    return make_finding(
        "summary_member",
        doc,
        copy,
        tol,
        title=f"{doc.label} changed after its daily summary {held.number} was posted to {where}{suffix}",
        message=f"{what}: the books count it as it was. "
        + (advice if copy.holds else "The next push posts the summary again."),
        base_severity=HIGH,
        at_risk=doc.amount,
        extra={"summary": _summary_details(copy), **extra},
    )


# --- duplicates ---------------------------------------------------------------------------------------
def duplicate_at_source(doc: Document, earlier: Sequence[int], tol: Tolerances) -> Finding | None:
    """The same number (a payment: processor transaction id) from the same source on more than one
    canonical document: the later ones are the duplicates (`earlier`: ids of the documents with this
    number that came first)."""
    if not earlier:
        return None
    key_name = SOURCE_KEY.get(doc.object_type, "number")
    key = text(doc.values.get(key_name))
    if not key:
        return None
    others = ", ".join(f"#{pk}" for pk in earlier)
    source = doc.source_name or "its source"
    if doc.object_type == PAYMENT:
        title = f"{doc.label}: transaction {key} came twice from {source} (also {others})"
        message = (
            f"Two payments from one source carry the same processor transaction id ({key}): one of them is "
            "probably a duplicate, and the money is counted twice wherever it was sent."
        )
    else:
        title = f"{doc.label} came twice from {source} (also {others})"
        message = (
            "Two documents from one source carry the same number: one of them is probably a duplicate "
            "and is counted twice wherever it was sent."
        )
    return make_finding(
        "duplicate_at_source",
        doc,
        None,
        tol,
        title=title,
        message=message,
        base_severity=HIGH,
        at_risk=doc.amount,
        connection_id=doc.source_connection_id,
        connection_name=source,
        extra={"duplicate_of": list(earlier), "connection": source, key_name: key},
    )


def duplicate_in_destination(
    doc: Document, copy: Copy, record: Mapping[str, Any], tol: Tolerances
) -> Finding:
    """A record in a destination that duplicates the document's bound copy there (found by the mirror)."""
    external_id = text(record.get("external_id"))
    at_risk = money(record.get("total")) or money(record.get("amount")) or doc.amount
    return make_finding(
        "duplicate_in_destination",
        doc,
        copy,
        tol,
        title=f"{doc.label} is in {copy.connection_name} twice ({copy.external_id} and {external_id})",
        message="The destination holds a second record for this document: it is counted twice there. Void "
        "the one that is not bound.",
        base_severity=HIGH,
        at_risk=at_risk,
        extra={"duplicate": jsonable(record)},
        extra_identity=(external_id,),
    )
