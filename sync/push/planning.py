"""What a push run has to do: the mapping snapshot, the candidates, and an outbox operation per write."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from sync import mapping
from sync.models import (
    Binding,
    MappingRow,
    ObjectType,
    Payment,
    PushOperation,
    ReferenceData,
    SyncJob,
    SyncProfile,
)
from sync.push.common import DATE_FIELDS, GONE, MODELS, PAGE_SIZE, UNSETTLED, Op, State, operation_key


# --- the mapping snapshot -----------------------------------------------------------------------------
def mapping_table(profile: SyncProfile) -> mapping.MappingTable:
    connector = profile.destination.connector()
    rows: dict[str, dict[str, str]] = {}
    prefix = suffix = ""
    if profile.mapping_set_id:
        prefix, suffix = profile.mapping_set.number_prefix, profile.mapping_set.number_suffix
        for row in MappingRow.objects.filter(mapping_set_id=profile.mapping_set_id):
            source = row.source_value.lower() if row.kind == MappingRow.Kind.CUSTOMER else row.source_value
            rows.setdefault(row.kind, {})[source] = row.target_value
    known: dict[str, set[str]] = {}
    customers = []
    for ref in ReferenceData.objects.filter(connection=profile.destination, active=True):
        if ref.kind == ReferenceData.Kind.CUSTOMER:
            customers.append(mapping.DestinationCustomer(ref.code, ref.name, ref.email, ref.tax_number))
        else:
            known.setdefault(ref.kind, set()).add(ref.code)
    return mapping.MappingTable(
        rows=rows,
        number_prefix=prefix,
        number_suffix=suffix,
        line_rules=dict(connector.line_mapping),
        known={kind: frozenset(codes) for kind, codes in known.items()},
        customers=tuple(customers),
    )


def mapping_url(profile: SyncProfile) -> str:
    if profile.mapping_set_id:
        return reverse("admin:sync_mappingset_change", args=[profile.mapping_set_id])
    return reverse("admin:sync_syncprofile_change", args=[profile.pk])


# --- planning -----------------------------------------------------------------------------------------
def candidates(
    profile: SyncProfile,
    object_type: str,
    *,
    date_range: tuple[date, date] | None = None,
    ids: Sequence[int] | None = None,
) -> Any:
    """Documents from the profile's source that the destination does not have at their current version
    (only those with the primary keys `ids`, when given)."""
    model = MODELS[object_type]
    bound = Binding.objects.filter(
        connection_id=profile.destination_id, object_type=object_type, object_id=OuterRef("pk")
    )
    if object_type == ObjectType.CUSTOMER:
        origin = Binding.objects.filter(connection_id=profile.source_id, object_type=object_type)
        return (
            model.objects.filter(pk__in=origin.values("object_id"))
            .annotate(bound_id=Subquery(bound.values("pk")[:1]))
            .filter(bound_id__isnull=True)
            .order_by("pk")
        )
    queryset = model.objects.filter(source_connection_id=profile.source_id)
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    date_field = DATE_FIELDS[object_type]
    if date_range is not None:
        queryset = queryset.filter(**{f"{date_field}__range": date_range})
    elif profile.cutover_date:
        queryset = queryset.filter(**{f"{date_field}__gte": profile.cutover_date})
    queryset = queryset.annotate(
        bound_id=Subquery(bound.values("pk")[:1]),
        pushed=Subquery(bound.values("document_version")[:1]),
    ).filter(Q(bound_id__isnull=True) | Q(pushed__isnull=True) | Q(pushed__lt=F("row_version")))
    related = {
        ObjectType.INVOICE: (["customer"], ["lines"]),
        ObjectType.CREDIT_NOTE: (["customer", "original_invoice"], ["lines", "allocations__invoice"]),
        ObjectType.PAYMENT: (["customer"], ["allocations__invoice"]),
    }[object_type]
    return queryset.select_related(*related[0]).prefetch_related(*related[1]).order_by("pk")


def _pages(queryset: Any, size: int = PAGE_SIZE) -> Iterable[list[Any]]:
    """Keyset pages: documents that stay behind (blocked, failed) never make the loop go round again."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last)[:size])
        if not page:
            return
        yield page
        last = page[-1].pk


def operation_for(object_type: str, document: Any, binding: Binding | None) -> str | None:
    status = getattr(document, "status", "")
    if binding is None:
        if object_type == ObjectType.PAYMENT and status != Payment.Status.COMPLETED:
            return None
        return None if status in GONE else Op.CREATE
    if binding.remote_deleted:
        return None
    if status in GONE:
        return Op.VOID
    return Op.UPDATE


def _operation(
    profile: SyncProfile, object_type: str, document: Any, operation: str, reference: str, job: SyncJob | None
) -> PushOperation:
    version = getattr(document, "row_version", 1)
    key = operation_key(profile.pk, object_type, document.pk, version, operation)
    op, created = PushOperation.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "profile": profile,
            "connection_id": profile.destination_id,
            "object_type": object_type,
            "object_id": document.pk,
            "document_version": version,
            "operation": operation,
            "reference": reference[:100],
            "job": job,
        },
    )
    if created:
        # older versions never sent are replaced by this one; sent ones stay until settled by lookup
        PushOperation.objects.filter(
            profile=profile, object_type=object_type, object_id=document.pk, attempts=0
        ).exclude(pk=op.pk).filter(state__in=[State.PENDING, State.BLOCKED]).update(state=State.SUPERSEDED)
    elif job is not None and op.job_id != job.pk and op.state != State.SUCCEEDED:
        op.job = job
        op.save(update_fields=["job", "updated_at"])
    return op


def _operations(
    profile: SyncProfile,
    object_type: str,
    wanted: Sequence[tuple[Any, str, str]],
    job: SyncJob | None,
) -> list[PushOperation]:
    """`_operation` for a page of (document, operation, reference) at once: one query for the
    operations that exist, one insert for the new ones, one update each for superseding and for
    moving them to this job. A clash with a concurrent writer falls back to one at a time."""
    if not wanted:
        return []
    keyed = []
    for document, operation, reference in wanted:
        version = getattr(document, "row_version", 1)
        key = operation_key(profile.pk, object_type, document.pk, version, operation)
        keyed.append((key, document, operation, reference, version))
    found = {
        op.idempotency_key: op
        for op in PushOperation.objects.filter(idempotency_key__in=[key for key, *_ in keyed])
    }
    new = [
        PushOperation(
            idempotency_key=key,
            profile=profile,
            connection_id=profile.destination_id,
            object_type=object_type,
            object_id=document.pk,
            document_version=version,
            operation=operation,
            reference=reference[:100],
            job=job,
        )
        for key, document, operation, reference, version in keyed
        if key not in found
    ]
    if new:
        try:
            with transaction.atomic():
                created = PushOperation.objects.bulk_create(new)
                # older versions never sent are replaced by these; sent ones stay until settled by lookup
                PushOperation.objects.filter(
                    profile=profile,
                    object_type=object_type,
                    object_id__in=[op.object_id for op in created],
                    attempts=0,
                    state__in=[State.PENDING, State.BLOCKED],
                ).exclude(pk__in=[op.pk for op in created]).update(state=State.SUPERSEDED)
        except IntegrityError:
            # another worker wrote one of them meanwhile: the careful way, one at a time
            return [
                _operation(profile, object_type, document, operation, reference, job)
                for document, operation, reference in wanted
            ]
        found.update({op.idempotency_key: op for op in created})
    if job is not None:
        moved = [
            op
            for op in found.values()
            if op.pk is not None and op.job_id != job.pk and op.state != State.SUCCEEDED
        ]
        if moved:
            now = timezone.now()
            PushOperation.objects.filter(pk__in=[op.pk for op in moved]).update(job=job, updated_at=now)
            for op in moved:
                op.job, op.updated_at = job, now
    return [found[key] for key, *_ in keyed]


def _unsettled_ops(ops: Sequence[PushOperation]) -> set[int]:
    """`_unsettled` for several operations in one query: the pks of those whose document had something
    sent whose outcome we do not know (look before creating)."""
    flagged = {op.pk for op in ops if op.attempts and op.state in UNSETTLED}
    rest = [op for op in ops if op.pk not in flagged]
    if not rest:
        return flagged
    others = PushOperation.objects.filter(
        profile_id__in={op.profile_id for op in rest},
        object_type__in={op.object_type for op in rest},
        object_id__in={op.object_id for op in rest},
        attempts__gt=0,
        state__in=UNSETTLED,
    ).values_list("pk", "profile_id", "object_type", "object_id")
    sent: dict[tuple[int, str, int], set[int]] = {}
    for pk, profile_id, object_type, object_id in others:
        sent.setdefault((profile_id, object_type, object_id), set()).add(pk)
    for op in rest:
        if sent.get((op.profile_id, op.object_type, op.object_id), set()) - {op.pk}:
            flagged.add(op.pk)
    return flagged


def _unsettled(op: PushOperation) -> bool:
    """Was anything for this document sent whose outcome we do not know? Then look before creating."""
    if op.attempts and op.state in UNSETTLED:
        return True
    return (
        PushOperation.objects.filter(
            profile_id=op.profile_id,
            object_type=op.object_type,
            object_id=op.object_id,
            attempts__gt=0,
            state__in=UNSETTLED,
        )
        .exclude(pk=op.pk)
        .exists()
    )
