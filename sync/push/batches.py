"""The outbox protocol for creates sent several to a request (QuickBooks batches of 30, Xero 50 a call)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from connectors.base import (
    ConnectorError,
    PermanentError,
    RemoteRef,
    RetryableError,
    UncertainError,
)
from reconciliation.models import ReconciliationException
from reconciliation.services import exception_fingerprint, exceptions_resolve_by_system
from sync.models import (
    Binding,
    PushOperation,
)
from sync.push.common import (
    RETRY_DELAY,
    UNSETTLED,
    Kind,
    Prepared,
    PushPaused,
    PushReport,
    State,
    crash_point,
)
from sync.push.outbox import _copy, _fail, _settle, _succeed, execute
from sync.push.planning import _unsettled_ops


def _rows_update(model: Any, objs: Sequence[Any], names: Sequence[str]) -> None:
    """Save `names` of each of `objs` with one `executemany` of a plain UPDATE (Django's bulk_update
    builds a CASE per field and row, and costs more than the rest of a batch)."""
    if not objs:
        return
    using = router.db_for_write(model)
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    pk = model._meta.pk
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET "  # noqa: S608 - names from the model, values parameters
        f"{', '.join(f'{quote(f.column)} = %s' for f in fields)} WHERE {quote(pk.column)} = %s"
    )
    params = [
        [*(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields), obj.pk] for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _begin_many(items: Sequence[Prepared]) -> list[Prepared]:
    """`_begin` for a batch in one transaction: every intent (in_flight, attempts + 1, payload) is
    committed before the request leaves. Returns the items to send (not those succeeded meanwhile)."""
    if not items:
        return []
    started: list[tuple[Prepared, PushOperation]] = []
    with transaction.atomic():
        rows = PushOperation.objects.select_for_update().in_bulk([item.op.pk for item in items])
        now = timezone.now()
        for item in items:
            current = rows[item.op.pk]
            if current.state == State.SUCCEEDED:
                continue
            current.state = State.IN_FLIGHT
            current.attempts += 1
            current.payload = item.payload
            current.error = ""
            current.updated_at = now
            started.append((item, current))
        if started:
            _rows_update(
                PushOperation,
                [current for _, current in started],
                ["state", "attempts", "payload", "error", "updated_at"],
            )
    for item, current in started:
        item.op.state, item.op.attempts, item.op.payload = current.state, current.attempts, item.payload
    return [item for item, _ in started]


def _succeed_many(
    pairs: Sequence[tuple[PushOperation, RemoteRef]], copies: Mapping[int, dict[str, Any]] | None = None
) -> None:
    """`_succeed` for the creates of one batch answer, in one transaction: bindings written (with the
    snapshots in `copies`, by operation pk), operations succeeded, older unsettled ones superseded. A
    destination id already bound elsewhere (or a clash with a concurrent writer) goes through `_succeed`
    alone, which reports it."""
    if not pairs:
        return
    copies = copies or {}
    first = pairs[0][0]
    if len(pairs) == 1 or any(
        (op.connection_id, op.object_type, op.profile_id)
        != (first.connection_id, first.object_type, first.profile_id)
        for op, _ in pairs
    ):
        for op, ref in pairs:
            _succeed(op, ref, snapshot=copies.get(op.pk))
        return
    bound = dict(
        Binding.objects.filter(
            connection_id=first.connection_id,
            object_type=first.object_type,
            external_id__in=[ref.external_id for _, ref in pairs],
        ).values_list("external_id", "object_id")
    )
    clean: list[tuple[PushOperation, RemoteRef]] = []
    alone: list[tuple[PushOperation, RemoteRef]] = []
    for op, ref in pairs:
        if bound.get(ref.external_id, op.object_id) != op.object_id:
            alone.append((op, ref))
        else:
            bound[ref.external_id] = op.object_id
            clean.append((op, ref))
    try:
        with transaction.atomic():
            _bindings_write(first, clean, copies)
            now = timezone.now()
            for op, ref in clean:
                op.external_id = ref.external_id[:255]
                op.remote_version = (ref.remote_version or "")[:100]
                op.response = ref.raw if isinstance(ref.raw, dict | list) else None
                op.state = State.SUCCEEDED
                op.error = ""
                op.next_attempt_at = None
                op.updated_at = now
            _rows_update(
                PushOperation,
                [op for op, _ in clean],
                [
                    "external_id",
                    "remote_version",
                    "response",
                    "state",
                    "error",
                    "next_attempt_at",
                    "updated_at",
                ],
            )
            PushOperation.objects.filter(
                profile_id=first.profile_id,
                object_type=first.object_type,
                object_id__in=[op.object_id for op, _ in clean],
                state__in=UNSETTLED,
            ).exclude(pk__in=[op.pk for op, _ in clean]).update(
                state=State.SUPERSEDED, error="settled by a later operation"
            )
    except IntegrityError:
        for op, _ in clean:  # nothing of it was kept: each alone, the clash reported where it is
            op.refresh_from_db()
        alone = clean + alone
    else:
        fingerprints = [
            exception_fingerprint(kind, op.profile_id, op.object_type, op.object_id)
            for op, _ in clean
            for kind in (Kind.SYNC_FAILURE, Kind.MAPPING_MISSING, Kind.CONFLICT)
        ]
        exceptions_resolve_by_system(
            ReconciliationException.objects.filter(fingerprint__in=fingerprints), reason="pushed cleanly"
        )
    for op, ref in alone:
        _succeed(op, ref, snapshot=copies.get(op.pk))


def _bindings_write(
    first: PushOperation,
    pairs: Sequence[tuple[PushOperation, RemoteRef]],
    copies: Mapping[int, dict[str, Any]] | None = None,
) -> None:
    """The bindings `_succeed` writes (update_or_create), for a batch: one read, one insert, one update."""
    copies = copies or {}
    existing = {
        binding.object_id: binding
        for binding in Binding.objects.filter(
            connection_id=first.connection_id,
            object_type=first.object_type,
            object_id__in=[op.object_id for op, _ in pairs],
        )
    }
    now = timezone.now()
    fresh, changed = [], []
    for op, ref in pairs:
        values = {
            "external_id": ref.external_id,
            "external_number": (ref.number or "")[:100],
            "remote_version": (ref.remote_version or "")[:100],
            "document_version": op.document_version,
            "raw_payload": ref.raw if isinstance(ref.raw, dict | list) else {},
            "remote_deleted": False,
            "is_origin": False,
        }
        binding = existing.get(op.object_id)
        if op.pk in copies:
            values.update(snapshot=copies[op.pk], snapshot_at=now)
        if binding is None:
            fresh.append(
                Binding(
                    connection_id=op.connection_id,
                    object_type=op.object_type,
                    object_id=op.object_id,
                    **values,
                )
            )
        else:
            for name, value in values.items():
                setattr(binding, name, value)
            binding.last_synced_at = now
            changed.append(binding)
    if fresh:
        Binding.objects.bulk_create(fresh)
    if changed:
        names = [name for name in values if name not in ("snapshot", "snapshot_at")]
        _rows_update(Binding, changed, [*names, "snapshot", "snapshot_at", "last_synced_at"])


def execute_batch(connector: Any, items: Sequence[Prepared], report: PushReport) -> None:
    """Creates sent several to a request (Xero 50 a call, QuickBooks batches of 30), same protocol: the
    intents of the whole batch committed in one transaction before it leaves, the bindings of the whole
    answer in one transaction straight after it."""
    unsettled = _unsettled_ops([item.op for item in items])
    fresh = [item for item in items if item.op.pk not in unsettled]
    for item in items:
        if item.op.pk in unsettled:
            execute(connector, item, report, unsettled=True)
    started = _begin_many(fresh)
    if not started:
        return
    object_type = started[0].op.object_type
    key = hashlib.sha256("".join(item.op.idempotency_key for item in started).encode()).hexdigest()[:40]
    for item in started:
        crash_point("before_request", item.op)
    try:
        results = connector.create_many(object_type, [item.payload for item in started], idempotency_key=key)
    except UncertainError as exc:
        for item in started:
            _settle(item.op, State.UNCERTAIN, str(exc))
            report.count("failed")
        return
    except RetryableError as exc:
        for item in started:
            _settle(
                item.op, State.RETRY_SCHEDULED, str(exc), delay=exc.retry_after or RETRY_DELAY.total_seconds()
            )
        raise PushPaused(f"{started[0].op.connection} asked us to wait: {exc}", exc.retry_after) from exc
    except PermanentError as exc:
        for item in started:
            _fail(item.op, item, exc, report)
        return
    made: list[tuple[PushOperation, RemoteRef]] = []
    copies: dict[int, dict[str, Any]] = {}
    for item, result in zip(started, results, strict=True):
        if isinstance(result, ConnectorError):
            _fail(item.op, item, result, report)
            continue
        crash_point("after_write", item.op)
        made.append((item.op, result))
        copy = _copy(connector, item, result)
        if copy is not None:
            copies[item.op.pk] = copy
    _succeed_many(made, copies)
    for op, _ in made:
        crash_point("after_commit", op)
        report.count("created")
