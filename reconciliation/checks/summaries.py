"""Posted daily summaries against their members: a summary's totals, as composed and as the destination
holds them (its binding's snapshot, when known), against the sum of its members as they are now.

The members' sums are computed by the database, per summary (a correlated sub-query over the members'
lines, for payments their allocations), so a page of summaries is one query however many sales a day
holds; what a summary should count follows sync/summary.py: members still of its day and currency, sales
(not draft, void or deleted), completed payments.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, F, Func, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from reconciliation import rules
from reconciliation.checks.scope import SUMMARY_TYPES, Scope
from reconciliation.checks.values import NOT_SALES
from sync import snapshots
from sync.models import (
    MONEY,
    Binding,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    ObjectType,
    Payment,
    PaymentAllocation,
    SummaryMember,
    SummaryPosting,
)

_MONEY = DecimalField(**MONEY)
# per object type: the rows whose amounts make up a summary, the path from them to the document, and the
# document's date field
_PARTS: dict[str, tuple[Any, str, str]] = {
    ObjectType.INVOICE: (InvoiceLine, "invoice", "issue_date"),
    ObjectType.CREDIT_NOTE: (CreditNoteLine, "credit_note", "issue_date"),
    ObjectType.PAYMENT: (PaymentAllocation, "payment", "transaction_date"),
}
_DOCUMENTS = {ObjectType.INVOICE: Invoice, ObjectType.CREDIT_NOTE: CreditNote, ObjectType.PAYMENT: Payment}


def _sum(queryset: Any, name: str) -> Any:
    # SUM over every row of the sub-query (no GROUP BY), correlated to the summary row outside
    summed = (
        queryset.order_by().annotate(s=Func(F(name), function="SUM", output_field=_MONEY)).values("s")[:1]
    )
    return Coalesce(Subquery(summed, output_field=_MONEY), Value(Decimal(0)), output_field=_MONEY)


def _annotated(kind: str) -> Any:
    """Summaries of `kind` with the members' sums ("members_total", "members_tax") and the latest change
    of a member ("members_changed")."""
    object_type = SUMMARY_TYPES[kind]
    model, path, date_field = _PARTS[object_type]
    members = SummaryMember.objects.filter(summary_id=OuterRef(OuterRef("pk")), object_type=object_type)
    counted = model.objects.filter(
        **{
            f"{path}_id__in": members.values("object_id"),
            f"{path}__{date_field}": OuterRef("day"),
            f"{path}__currency": OuterRef("currency"),
        }
    )
    if object_type == ObjectType.PAYMENT:
        counted = counted.filter(payment__status=Payment.Status.COMPLETED)
        sums = {"members_total": _sum(counted, "amount"), "members_tax": Value(None, output_field=_MONEY)}
    else:
        counted = counted.exclude(**{f"{path}__status__in": NOT_SALES})
        sums = {"members_total": _sum(counted, "total"), "members_tax": _sum(counted, "tax_amount")}
    changed = (
        _DOCUMENTS[object_type]
        .objects.filter(
            pk__in=SummaryMember.objects.filter(summary_id=OuterRef(OuterRef("pk"))).values("object_id")
        )
        .order_by()
        .annotate(latest=Func(F("updated_at"), function="MAX"))
        .values("latest")[:1]
    )
    return SummaryPosting.objects.annotate(**sums, members_changed=Subquery(changed))


def summary_pages(scope: Scope, kind: str, size: int) -> Iterator[list[dict[str, Any]]]:
    """Keyset pages of the posted summaries of `kind` in scope, each row with its members' sums and its
    binding on the profile's destination."""
    profiles = {profile.pk: profile for profile in scope.summary_profiles(SUMMARY_TYPES[kind])}
    if scope.profile is not None:
        profiles = {pk: profile for pk, profile in profiles.items() if pk == scope.profile.pk}
    if not profiles:
        return
    posted = Binding.objects.filter(
        object_type=kind, object_id=OuterRef("pk"), connection_id=OuterRef("profile__destination_id")
    ).filter(remote_deleted=False)
    queryset = (
        _annotated(kind)
        .filter(kind=kind, profile_id__in=list(profiles))
        .annotate(binding_id=Subquery(posted.values("pk")[:1]))
        .filter(~Q(binding_id=None))
    )
    if scope.document is not None:
        queryset = queryset.filter(pk=scope.document[1])
    fields = (
        "id",
        "profile_id",
        "number",
        "day",
        "currency",
        "member_count",
        "total",
        "tax_total",
        "binding_id",
        "members_total",
        "members_tax",
        "members_changed",
    )
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk").values(*fields)[:size])
        if not page:
            return
        bindings = {
            pk: (connection_id, external_id, snapshot)
            for pk, connection_id, external_id, snapshot in Binding.objects.filter(
                pk__in=[row["binding_id"] for row in page]
            ).values_list("pk", "connection_id", "external_id", "snapshot")
        }
        for row in page:
            row["binding"] = bindings.get(row["binding_id"])
        yield page
        last = page[-1]["id"]


def summary_check(
    kind: str, row: dict[str, Any], scope: Scope, tol: rules.Tolerances
) -> tuple[rules.Finding | None, int] | None:
    """(finding or None, destination id) for one posted summary; None when a member changed too lately
    to judge (the next push composes it again)."""
    if row["binding"] is None:
        return None
    if row["members_changed"] is not None and row["members_changed"] > scope.missing_before:
        return None
    connection_id, external_id, snapshot = row["binding"]
    currency = row["currency"]
    summary = rules.Document(
        object_type=kind,
        object_id=row["id"],
        values={
            "number": row["number"],
            "currency": row["currency"],
            "day": row["day"].isoformat(),
            "total": snapshots.money(row["total"], currency),
            "tax_total": snapshots.money(row["tax_total"], currency)
            if kind != rules.SUMMARY_PAYMENT
            else None,
            "member_count": row["member_count"],
        },
    )
    copy = rules.Copy(
        connection_id=connection_id,
        connection_name=scope.names.get(connection_id, f"connection {connection_id}"),
        values=snapshot or {},
        external_id=external_id,
    )
    # at the currency's minor unit, as summaries are posted and copies read
    members = {"total": rules.money(snapshots.money(row["members_total"], currency))}
    if row["members_tax"] is not None:
        members["tax_total"] = rules.money(snapshots.money(row["members_tax"], currency))
    return rules.summary_total(summary, members, copy, tol), connection_id
