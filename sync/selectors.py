"""Reads (and the one get-or-create the CSV commands need)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import Count, Q

from connectors.models import Connection
from sync.models import (
    Binding,
    CreditNote,
    Customer,
    Invoice,
    ObjectType,
    Payment,
    PushOperation,
    ReferenceData,
    SyncAttempt,
)


def csv_connection_for(*, name: str) -> Connection:
    """The CSV connection called `name`, or a new unsaved one (saved once a file has been read)."""
    connection = Connection.objects.filter(name=name).first()
    if connection is None:
        return Connection(name=name, platform="csv", role=Connection.Role.SOURCE)
    if connection.platform != "csv":
        raise ValueError(f"connection {name!r} is a {connection.platform} connection, not a CSV one")
    return connection


def document_bindings(*, object_type: str, object_id: int) -> list[Binding]:
    """Every copy of a document: where it came from first, then where it was sent."""
    return list(
        Binding.objects.filter(object_type=object_type, object_id=object_id)
        .select_related("connection")
        .order_by("-is_origin", "first_seen_at")
    )


@dataclass
class Lineage:
    """One canonical document and everything that shows where it came from and where it went."""

    object_type: str
    object_id: int
    document: Any  # None when a binding points at a document that no longer exists
    bindings: list[Binding] = field(default_factory=list)
    operations: list[PushOperation] = field(default_factory=list)
    attempts: list[SyncAttempt] = field(default_factory=list)
    exceptions: list[Any] = field(default_factory=list)

    @property
    def source(self) -> Binding | None:
        return next((b for b in self.bindings if b.is_origin), None)

    @property
    def destinations(self) -> list[Binding]:
        return [b for b in self.bindings if not b.is_origin]


# Lookup order on the page: documents first, customers last.
# Plain strings: an enum member hashes differently from the value the database returns.
LINEAGE_MODELS: dict[str, type[models.Model]] = {
    ObjectType.INVOICE.value: Invoice,
    ObjectType.CREDIT_NOTE.value: CreditNote,
    ObjectType.PAYMENT.value: Payment,
    ObjectType.CUSTOMER.value: Customer,
}


def _documents_q(refs: Iterable[tuple[str, int]]) -> Q:
    by_type: dict[str, set[int]] = defaultdict(set)
    for object_type, object_id in refs:
        by_type[object_type].add(object_id)
    query = Q(pk__in=[])
    for object_type, ids in by_type.items():
        query |= Q(object_type=object_type, object_id__in=sorted(ids))
    return query


def document_lineage(query: str, *, limit: int = 50) -> list[Lineage]:
    """Every canonical document `query` names, with its whole lineage.

    `query` is matched exactly (after trimming) against binding external ids and numbers on any
    connection, invoice and credit note numbers, and payment references and processor transaction ids.
    The number of queries does not depend on how many documents match: at most eight.
    """
    query = query.strip()
    if not query:
        return []
    from reconciliation.models import ReconciliationException

    bound: dict[str, set[int]] = defaultdict(set)
    for object_type, object_id in Binding.objects.filter(
        Q(external_id=query) | Q(external_number=query)
    ).values_list("object_type", "object_id")[: limit * 4]:
        bound[object_type].add(object_id)

    by_number = {
        ObjectType.INVOICE.value: Q(number=query),
        ObjectType.CREDIT_NOTE.value: Q(number=query),
        ObjectType.PAYMENT.value: Q(reference=query) | Q(processor_transaction_id=query),
    }
    found: dict[tuple[str, int], Any] = {}
    for object_type, model in LINEAGE_MODELS.items():
        match = Q(pk__in=sorted(bound[object_type])) if bound[object_type] else Q(pk__in=[])
        if object_type in by_number:
            match |= by_number[object_type]
        elif not bound[object_type]:
            continue
        documents = model.objects.filter(match)
        if object_type != ObjectType.CUSTOMER.value:
            documents = documents.select_related("customer", "source_connection")
        for document in documents.order_by("-pk")[:limit]:
            found[(object_type, document.pk)] = document
    # A binding whose document is gone still says where something went.
    refs = list(found) + [
        (object_type, object_id)
        for object_type, ids in bound.items()
        for object_id in sorted(ids)
        if (object_type, object_id) not in found
    ]
    refs = refs[:limit]
    if not refs:
        return []
    lineages = {ref: Lineage(object_type=ref[0], object_id=ref[1], document=found.get(ref)) for ref in refs}
    where = _documents_q(refs)

    for binding in (
        Binding.objects.filter(where).select_related("connection").order_by("-is_origin", "first_seen_at")
    ):
        lineages[(binding.object_type, binding.object_id)].bindings.append(binding)

    operations = list(
        PushOperation.objects.filter(where)
        .select_related("connection", "profile", "job")
        .order_by("created_at", "id")
    )
    for operation in operations:
        lineages[(operation.object_type, operation.object_id)].operations.append(operation)

    job_ids = {operation.job_id for operation in operations if operation.job_id}
    if job_ids:
        attempts: dict[int, list[SyncAttempt]] = defaultdict(list)
        for attempt in (
            SyncAttempt.objects.filter(job_id__in=sorted(job_ids))
            .annotate(exchange_count=Count("exchanges"))
            .order_by("job_id", "number")
        ):
            attempts[attempt.job_id].append(attempt)
        for lineage in lineages.values():
            seen: set[int] = set()
            for operation in lineage.operations:
                if operation.job_id and operation.job_id not in seen:
                    seen.add(operation.job_id)
                    lineage.attempts.extend(attempts[operation.job_id])

    for exception in ReconciliationException.objects.filter(
        where, state__in=ReconciliationException.OPEN_STATES
    ).order_by("-last_seen_at", "-id"):
        lineages[(exception.object_type, exception.object_id)].exceptions.append(exception)

    return list(lineages.values())


def exceptions_unbound(query: str, *, limit: int = 50) -> list[Any]:
    """Open exceptions naming `query` (number or external id) but no document, e.g. a rejected import row."""
    query = query.strip()
    if not query:
        return []
    from reconciliation.models import ReconciliationException

    return list(
        ReconciliationException.objects.filter(
            Q(document_number=query) | Q(external_id=query),
            Q(object_id__isnull=True),
            state__in=ReconciliationException.OPEN_STATES,
        ).order_by("-last_seen_at", "-id")[:limit]
    )


def reference_data_by_kind(*, connection_id: int | None) -> dict[str, dict[str, ReferenceData]]:
    """A connection's reference data, kind -> code -> row, in display order (one query)."""
    by_kind: dict[str, dict[str, ReferenceData]] = defaultdict(dict)
    if connection_id is None:
        return {}
    for ref in ReferenceData.objects.filter(connection_id=connection_id).order_by("kind", "name", "code"):
        by_kind[ref.kind][ref.code] = ref
    return dict(by_kind)
