"""The rules' values for one page: `rules.Document` from a row, `rules.Copy` per connection, from the
page's bindings, summary memberships and what holds documents back (one query each, whatever the page)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.db.models import Q

from connectors.base import ConnectorError
from connectors.money import currency_exponent
from reconciliation import rules
from reconciliation.checks.scope import DATE_FIELD, FORMS, Scope, summary_mode
from reconciliation.models import ReconciliationException
from sync import snapshots
from sync.models import Binding, ObjectType, Payment, PaymentAllocation, PushOperation, SummaryMember

# statuses that keep a document out of any daily summary (sync/summary.py)
NOT_SALES = {"draft", "void", "deleted"}
# what names why a document is not in a destination: open exceptions of the sync engine, and the outbox
# operations that stopped
HOLD_KINDS = (
    ReconciliationException.Kind.MAPPING_MISSING,
    ReconciliationException.Kind.SYNC_FAILURE,
    ReconciliationException.Kind.CONFLICT,
)
HOLD_STATES = (PushOperation.State.BLOCKED, PushOperation.State.FAILED, PushOperation.State.UNCERTAIN)


@lru_cache(maxsize=64)
def _quantum(currency: str) -> Decimal | None:
    try:
        return Decimal(1).scaleb(-currency_exponent(currency))
    except ConnectorError:
        return None  # not an ISO 4217 code: sync.snapshots.money keeps the amount as it is


def _customer(row: Mapping[str, Any]) -> str | None:
    email = (row.get("customer__email") or "").strip()
    return email.lower() if email else (row.get("customer__name") or None)


def document_build(
    object_type: str, row: Mapping[str, Any], allocations: list[dict[str, Any]], scope: Scope
) -> rules.Document:
    currency = row["currency"]
    money_names, day_names, plain_names = FORMS[object_type]
    values = {name: row[name] for name in plain_names}
    quantum = _quantum(currency)
    for name in money_names:
        value = row[name]
        # the snapshot form (sync.snapshots.money) without its per-value checks: the column is a Decimal
        if value is None or quantum is None:
            values[name] = snapshots.money(value, currency)
        else:
            values[name] = str(value.quantize(quantum))
    for name in day_names:
        value = row[name]
        values[name] = value.isoformat() if value is not None else None
    rate = values.get("exchange_rate")
    if rate is not None:
        values["exchange_rate"] = format(rate.normalize(), "f")
    values["customer"] = _customer(row)
    if object_type == ObjectType.PAYMENT:
        for item in allocations:
            item["amount"] = snapshots.money(item["amount"], currency)
        values["allocations"] = allocations
        expected = row["status"] == Payment.Status.COMPLETED
    else:
        expected = row["status"] not in rules.GONE
    source = row["source_connection_id"]
    return rules.Document(
        object_type=object_type,
        object_id=row["id"],
        values=values,
        source_connection_id=source,
        source_name=scope.names.get(source, "") if source else "",
        expected=expected and row["created_at"] <= scope.missing_before,
    )


# --- copies -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    """A document's place in a daily summary, and that summary's copy on the profile's destination."""

    summary_id: int
    number: str
    counted_version: int
    summary_version: int
    bound: bool = False
    deleted: bool = False
    external_id: str = ""
    posted_version: int | None = None
    posted_at: datetime | None = None


def _in_summary(
    row: Mapping[str, Any], object_type: str, member: Member | None, scope: Scope
) -> rules.InSummary:
    when = row[DATE_FIELD[object_type]]
    held = rules.InSummary(day=when.isoformat(), currency=row["currency"])
    if member is None:
        return held
    updated = row.get("updated_at")
    return dataclasses.replace(
        held,
        summary_id=member.summary_id,
        number=member.number,
        posted=member.bound and not member.deleted,
        deleted=member.bound and member.deleted,
        external_id=member.external_id,
        counted_version=member.counted_version,
        current_version=row.get("row_version"),
        summary_version=member.summary_version,
        posted_version=member.posted_version,
        changed_since_posted=bool(updated and member.posted_at and updated > member.posted_at),
        recent=bool(updated and updated > scope.missing_before),
    )


def copies_build(
    object_type: str,
    row: Mapping[str, Any],
    bindings: list[tuple[Any, ...]],
    members: Mapping[tuple[int, int], Member],
    scope: Scope,
) -> list[rules.Copy]:
    """The document's copies on connections other than its origin, bound or expected by a profile. Where
    a daily-summary profile sends it and it has no copy of its own, its copy is its place in a summary."""
    source = row["source_connection_id"]
    when = row[DATE_FIELD[object_type]]
    expected_on: dict[int, bool] = {}
    summarised_by: dict[int, Any] = {}
    for profile in scope.expecting.get(source, ()) if source else ():
        if object_type in (profile.object_types or []) and profile.destination_id != source:
            ok = profile.cutover_date is None or when >= profile.cutover_date
            expected_on[profile.destination_id] = expected_on.get(profile.destination_id, False) or ok
            if summary_mode(profile):
                summarised_by[profile.destination_id] = profile
    copies, seen = [], set()
    for connection_id, external_id, snapshot, deleted, is_origin in bindings:
        if is_origin or connection_id == source:
            continue
        if scope.profile is not None and connection_id != scope.profile.destination_id:
            continue
        seen.add(connection_id)
        copies.append(
            rules.Copy(
                connection_id=connection_id,
                connection_name=scope.names.get(connection_id, f"connection {connection_id}"),
                values=snapshot or {},
                external_id=external_id,
                deleted=deleted,
                expected=expected_on.get(connection_id, True),
            )
        )
    for connection_id, ok in expected_on.items():
        if connection_id in seen:
            continue
        name = scope.names.get(connection_id, f"connection {connection_id}")
        profile = summarised_by.get(connection_id)
        if profile is None:
            copies.append(
                rules.Copy(connection_id=connection_id, connection_name=name, bound=False, expected=ok)
            )
            continue
        member = members.get((profile.pk, row["id"]))
        held = _in_summary(row, object_type, member, scope)
        # expected in a summary once its day is closed (plus the grace period) and it is a sale
        due = ok and when <= scope.summaries_due and row["status"] not in NOT_SALES
        copies.append(
            rules.Copy(
                connection_id=connection_id,
                connection_name=name,
                bound=False,
                external_id=held.external_id,
                expected=due,
                summary=held,
            )
        )
    return copies


def bindings_load(object_type: str, ids: list[int], scope: Scope) -> dict[int, list[tuple[Any, ...]]]:
    queryset = Binding.objects.filter(object_type=object_type, is_origin=False)
    if scope.profile is not None:
        queryset = queryset.filter(object_id__in=ids, connection_id=scope.profile.destination_id)
    else:
        # every document in the id range is in the page: a range reads the same rows as a long IN list
        queryset = queryset.filter(object_id__gte=ids[0], object_id__lte=ids[-1])
    result: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for object_id, *rest in queryset.values_list(
        "object_id", "connection_id", "external_id", "snapshot", "remote_deleted", "is_origin"
    ):
        result[object_id].append(tuple(rest))
    return result


def allocations_load(object_type: str, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    result: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if object_type != ObjectType.PAYMENT:
        return result
    rows = PaymentAllocation.objects.filter(payment_id__in=ids).values_list(
        "payment_id", "invoice_id", "amount", "invoice__status"
    )
    for payment_id, invoice_id, amount, status in rows:
        result[payment_id].append({"invoice_id": invoice_id, "amount": amount, "invoice_status": status})
    return result


def members_load(object_type: str, ids: list[int], scope: Scope) -> dict[tuple[int, int], Member]:
    """(profile id, document id) -> its place in a summary of a daily-summary profile in scope, with that
    summary's binding on the profile's destination and when its posted version was written there."""
    profiles = {profile.pk: profile for profile in scope.summary_profiles(object_type)}
    if not profiles or not ids:
        return {}
    kind = rules.SUMMARY_KINDS[object_type]
    rows = list(
        SummaryMember.objects.filter(
            profile_id__in=list(profiles),
            object_type=object_type,
            object_id__gte=ids[0],
            object_id__lte=ids[-1],
        ).values_list(
            "profile_id",
            "object_id",
            "document_version",
            "summary_id",
            "summary__number",
            "summary__row_version",
        )
    )
    if not rows:
        return {}
    summaries = {row[3]: profiles[row[0]].destination_id for row in rows}
    bound = {
        object_id: (external_id, deleted, version, synced)
        for object_id, connection_id, external_id, deleted, version, synced in Binding.objects.filter(
            object_type=kind, object_id__in=list(summaries)
        ).values_list(
            "object_id",
            "connection_id",
            "external_id",
            "remote_deleted",
            "document_version",
            "last_synced_at",
        )
        if summaries.get(object_id) == connection_id
    }
    # when each summary's posted version was written: the outbox operation that wrote it
    written: dict[tuple[int, int], datetime] = {}
    for object_id, version, at in PushOperation.objects.filter(
        object_type=kind, object_id__in=list(bound), state=PushOperation.State.SUCCEEDED
    ).values_list("object_id", "document_version", "updated_at"):
        written[(object_id, version)] = max(at, written.get((object_id, version), at))
    result: dict[tuple[int, int], Member] = {}
    for profile_id, object_id, counted, summary_id, number, summary_version in rows:
        member = Member(summary_id, number, counted, summary_version)
        if summary_id in bound:
            external_id, deleted, version, synced = bound[summary_id]
            member = dataclasses.replace(
                member,
                bound=True,
                deleted=deleted,
                external_id=external_id,
                posted_version=version,
                posted_at=written.get((summary_id, version), synced),
            )
        result[(profile_id, object_id)] = member
    return result


# --- what holds a document back -----------------------------------------------------------------------
def _waiting(copy: rules.Copy, doc: rules.Document) -> bool:
    """A copy the missing or summary rules may report: worth naming what holds it back."""
    held = copy.summary
    if held is not None:
        behind = held.posted and held.counted_version != held.current_version
        stale = (
            held.posted
            and held.posted_version is not None
            and held.summary_version is not None
            and held.posted_version < held.summary_version
        )
        return (doc.expected and copy.expected and not held.posted) or behind or stale
    return doc.expected and copy.expected and not (copy.bound and not copy.deleted)


def holds_attach(object_type: str, checks: list[tuple[rules.Document, list[rules.Copy]]]) -> None:
    """Name, on each copy that may be missing or behind, the open sync exception and the stopped outbox
    operation for the document (and for the summary holding it) on that connection: two queries a page,
    none when every copy is in place."""
    waiting = [
        (doc, copies, index, copy)
        for doc, copies in checks
        for index, copy in enumerate(copies)
        if _waiting(copy, doc)
    ]
    if not waiting:
        return
    kind = rules.SUMMARY_KINDS[object_type]
    doc_ids = {doc.object_id for doc, _, _, _ in waiting}
    summary_ids = {
        copy.summary.summary_id for _, _, _, copy in waiting if copy.summary and copy.summary.summary_id
    }
    about = Q(object_type=object_type, object_id__in=doc_ids)
    if summary_ids:
        about |= Q(object_type=kind, object_id__in=summary_ids)
    exceptions: dict[tuple[str, int], list[tuple[int | None, rules.Hold]]] = defaultdict(list)
    for pk, exception_type, object_id, connection_id, exception_kind, title in (
        ReconciliationException.objects.filter(
            about, kind__in=HOLD_KINDS, state__in=ReconciliationException.OPEN_STATES
        )
        .order_by("-pk")
        .values_list("pk", "object_type", "object_id", "connection_id", "kind", "title")
    ):
        exceptions[(exception_type, object_id)].append(
            (connection_id, rules.Hold("exception", pk, exception_kind, title))
        )
    operations: dict[tuple[str, int, int], rules.Hold | None] = {}
    connections = {copy.connection_id for _, _, _, copy in waiting}
    for pk, op_type, object_id, connection_id, state, error in (
        PushOperation.objects.filter(about, connection_id__in=connections)
        .order_by("-pk")
        .values_list("pk", "object_type", "object_id", "connection_id", "state", "error")
    ):
        # the latest operation says where the document stands; an older failure since overtaken does not
        operations.setdefault(
            (op_type, object_id, connection_id),
            rules.Hold("operation", pk, state, error[:500]) if state in HOLD_STATES else None,
        )
    for doc, copies, index, copy in waiting:
        keys = [(object_type, doc.object_id)]
        if copy.summary is not None and copy.summary.summary_id is not None:
            keys.append((kind, copy.summary.summary_id))
        holds: list[rules.Hold] = []
        for key in keys:
            named = next(
                (hold for where, hold in exceptions.get(key, ()) if where in (None, copy.connection_id)), None
            )
            operation = operations.get((*key, copy.connection_id))
            holds.extend(hold for hold in (named, operation) if hold is not None)
        if holds:
            copies[index] = dataclasses.replace(copy, holds=tuple(holds))
