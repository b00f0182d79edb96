"""The outbox protocol for one write: intent committed, request sent with its key, binding committed,
an unknown outcome looked up before anything is sent again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from connectors.base import (
    ConflictError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    RemoteRef,
    RetryableError,
    UncertainError,
    ValidationError,
)
from reconciliation.models import ReconciliationException
from reconciliation.services import exception_fingerprint, exception_record, exceptions_resolve_by_system
from sync import mapping, snapshots
from sync.models import (
    Binding,
    ObjectType,
    PushOperation,
)
from sync.push.common import (
    GONE,
    RETRY_DELAY,
    UNSETTLED,
    Kind,
    Op,
    Prepared,
    PushPaused,
    PushReport,
    Severity,
    State,
    crash_point,
)
from sync.push.copies import comparable, copy_matches
from sync.push.planning import _unsettled
from sync.push.records import document_label


# --- the outbox protocol ------------------------------------------------------------------------------
def _begin(op: PushOperation, payload: Any) -> bool:
    """Commit the intent before the request leaves. False when it already succeeded meanwhile."""
    with transaction.atomic():
        current = PushOperation.objects.select_for_update().get(pk=op.pk)
        if current.state == State.SUCCEEDED:
            return False
        current.state = State.IN_FLIGHT
        current.attempts += 1
        current.payload = payload
        current.error = ""
        current.save(update_fields=["state", "attempts", "payload", "error", "updated_at"])
    op.state, op.attempts, op.payload = current.state, current.attempts, payload
    return True


def _settle(
    op: PushOperation, state: str, error: str = "", *, response: Any = None, delay: float = 0
) -> None:
    op.state = state
    op.error = error[:4000]
    op.next_attempt_at = timezone.now() + timedelta(seconds=delay) if delay else None
    fields = ["state", "error", "next_attempt_at", "updated_at"]
    if response is not None:
        op.response = response
        fields.append("response")
    op.save(update_fields=fields)


def _succeed(
    op: PushOperation, ref: RemoteRef, *, deleted: bool = False, snapshot: dict[str, Any] | None = None
) -> None:
    """Bind the document to what the destination holds, in one transaction with the operation's state
    (with `snapshot`, the copy's values as written: see sync.snapshots)."""
    seen = {"snapshot": snapshot, "snapshot_at": timezone.now()} if snapshot is not None else {}
    with transaction.atomic():
        try:
            with transaction.atomic():
                Binding.objects.update_or_create(
                    connection_id=op.connection_id,
                    object_type=op.object_type,
                    object_id=op.object_id,
                    defaults={
                        "external_id": ref.external_id,
                        "external_number": (ref.number or "")[:100],
                        "remote_version": (ref.remote_version or "")[:100],
                        "document_version": op.document_version,
                        "raw_payload": ref.raw if isinstance(ref.raw, dict | list) else {},
                        "remote_deleted": deleted,
                        "is_origin": False,
                        **seen,
                    },
                )
        except IntegrityError:
            other = Binding.objects.filter(
                connection_id=op.connection_id, object_type=op.object_type, external_id=ref.external_id
            ).first()
            message = (
                f"the destination's {op.object_type} {ref.external_id} is already bound to "
                f"{op.object_type} {other.object_id if other else '?'}; not binding it twice"
            )
            _settle(op, State.FAILED, message, response=ref.raw)
            _duplicate_exception(op, ref, other)
            return
        op.external_id = ref.external_id[:255]
        op.remote_version = (ref.remote_version or "")[:100]
        op.response = ref.raw if isinstance(ref.raw, dict | list) else None
        op.state = State.SUCCEEDED
        op.error = ""
        op.next_attempt_at = None
        op.save()
        PushOperation.objects.filter(
            profile_id=op.profile_id, object_type=op.object_type, object_id=op.object_id, state__in=UNSETTLED
        ).exclude(pk=op.pk).update(state=State.SUPERSEDED, error="settled by a later operation")
    _resolve_exceptions(op)


def _resolve_exceptions(op: PushOperation) -> None:
    fingerprints = [
        exception_fingerprint(kind, op.profile_id, op.object_type, op.object_id)
        for kind in (Kind.SYNC_FAILURE, Kind.MAPPING_MISSING, Kind.CONFLICT)
    ]
    exceptions_resolve_by_system(
        ReconciliationException.objects.filter(fingerprint__in=fingerprints), reason="pushed cleanly"
    )


def _exception(
    op: PushOperation,
    kind: str,
    title: str,
    message: str,
    *,
    document: Any = None,
    severity: str = Severity.HIGH,
    details: dict[str, Any] | None = None,
) -> None:
    amount = getattr(document, "total", None) if document is not None else None
    if amount is None and document is not None:
        amount = getattr(document, "amount", None)
    exception_record(
        kind=kind,
        fingerprint=exception_fingerprint(kind, op.profile_id, op.object_type, op.object_id),
        title=title,
        message=message,
        severity=severity,
        connection=op.connection,
        job=op.job,
        object_type=op.object_type,
        object_id=op.object_id,
        document_number=getattr(document, "number", "") or getattr(document, "reference", "") or "",
        external_id=op.external_id,
        currency=getattr(document, "currency", "") or "",
        amount_at_risk=amount,
        details={"operation": op.pk, "idempotency_key": op.idempotency_key, **(details or {})},
    )


def _duplicate_exception(op: PushOperation, ref: RemoteRef, other: Binding | None) -> None:
    _exception(
        op,
        Kind.DUPLICATE,
        f"{op.object_type.replace('_', ' ').capitalize()} {op.reference}: the destination's "
        f"{ref.external_id} already belongs to another document",
        "Two documents share a reference in the destination. Set a number prefix on the mapping set, "
        "or resolve the duplicate by hand.",
        details={"external_id": ref.external_id, "bound_to": other.object_id if other else None},
    )


def _looked_up(connector: Any, op: PushOperation) -> RemoteRef | None:
    if not op.reference:
        return None
    return connector.find_by_reference(op.object_type, op.reference)


def _verified(connector: Any, op: PushOperation, payload: Any) -> RemoteRef | None:
    """After a conflict on a retried update or void: did our earlier request land? Then it is done."""
    try:
        change = connector.fetch(op.object_type, op.external_id or _bound_id(op))
    except NotFoundError:
        return RemoteRef(external_id=op.external_id or _bound_id(op)) if op.operation != Op.UPDATE else None
    if op.operation in (Op.VOID, Op.DELETE):
        status = getattr(change.record, "status", "")
        if change.deleted or status in GONE:
            return RemoteRef(
                external_id=change.external_id, remote_version=change.remote_version, raw=change.raw
            )
        return None
    if not copy_matches(payload, change.raw):
        return None
    return RemoteRef(external_id=change.external_id, remote_version=change.remote_version, raw=change.raw)


def _last_written(op: PushOperation, binding: Binding) -> PushOperation | None:
    """The write that left the copy as the binding knows it (its payload is what we sent)."""
    return (
        PushOperation.objects.filter(
            profile_id=op.profile_id,
            connection_id=op.connection_id,
            object_type=op.object_type,
            object_id=op.object_id,
            document_version=binding.document_version,
            operation__in=[Op.CREATE, Op.UPDATE],
            state=State.SUCCEEDED,
        )
        .exclude(payload=None)
        .exclude(pk=op.pk)
        .order_by("-pk")
        .first()
    )


def _same_payload(op: PushOperation, binding: Binding, payload: Any) -> bool:
    """Would an update send exactly what was last written? (a new version of the document that changed
    nothing the destination is sent: a status or an amount paid, which the destination keeps itself)"""
    written = _last_written(op, binding)
    if written is None:
        return False
    new, old = comparable(payload), comparable(written.payload)
    return not mapping.payload_diff(new, old) and not mapping.payload_diff(old, new)


def _moved_by_itself(connector: Any, op: PushOperation, binding: Binding) -> str | None:
    """After an update refused as a conflict: the copy's new remote version when its content is still
    what we last wrote (a payment applied there moves QuickBooks' SyncToken and Xero's UpdatedDateUTC,
    and changes nothing we sent), None when someone changed it there (a real conflict)."""
    written = _last_written(op, binding)
    if written is None:
        return None
    try:
        change = connector.fetch(op.object_type, binding.external_id)
    except NotFoundError:
        return None
    if not change.remote_version or change.remote_version == binding.remote_version:
        return None
    return change.remote_version if copy_matches(written.payload, change.raw) else None


def _bound_id(op: PushOperation) -> str:
    binding = Binding.objects.filter(
        connection_id=op.connection_id, object_type=op.object_type, object_id=op.object_id
    ).first()
    return binding.external_id if binding else ""


def _send(connector: Any, item: Prepared) -> RemoteRef:
    op, binding = item.op, item.binding
    if op.operation == Op.CREATE:
        if op.object_type == ObjectType.PAYMENT:
            return connector.record_payment(item.record, item.context, idempotency_key=op.idempotency_key)
        return connector.create(op.object_type, item.payload, idempotency_key=op.idempotency_key)
    assert binding is not None
    if op.operation == Op.UPDATE:
        return connector.update(
            op.object_type,
            binding.external_id,
            item.payload,
            remote_version=binding.remote_version,
            idempotency_key=op.idempotency_key,
        )
    if op.operation == Op.VOID:
        method = connector.void if connector.supports(op.object_type, "void") else connector.delete
        return method(
            op.object_type,
            binding.external_id,
            remote_version=binding.remote_version,
            idempotency_key=op.idempotency_key,
        )
    if op.operation == Op.ALLOCATE:
        refs = connector.allocate_credit_note(
            binding.external_id, item.record, item.context, idempotency_key=op.idempotency_key
        )
        return RemoteRef(
            external_id=binding.external_id,
            remote_version=binding.remote_version,
            raw={"allocations": [r.external_id for r in refs]},
        )
    raise ValueError(f"unknown operation {op.operation}")


def _copy(connector: Any, item: Prepared, ref: RemoteRef) -> dict[str, Any] | None:
    """The snapshot of the copy a write left (sync.snapshots): the document as pushed, overlaid with
    the destination's answer. None for customers."""
    return snapshots.pushed_snapshot(
        connector,
        item.op.object_type,
        item.document,
        item.context,
        ref.raw,
        connection_id=item.op.connection_id,
    )


def execute(
    connector: Any,
    item: Prepared,
    report: PushReport,
    *,
    unsettled: bool | None = None,
    refreshed: bool = False,
) -> None:
    """Send one operation under the protocol in the module docstring. `unsettled`: whether anything for
    the document was sent with an unknown outcome, when the caller looked it up for a whole page;
    `refreshed`: the binding's remote version was just taken from the copy (an update's second go)."""
    op = item.op
    if op.operation in (Op.CREATE,) and (_unsettled(op) if unsettled is None else unsettled):
        found = _looked_up(connector, op)
        if found is not None:
            _found(connector, item, found, report)
            return
    if (
        op.operation == Op.UPDATE
        and item.binding is not None
        and _same_payload(op, item.binding, item.payload)
    ):
        # nothing to send: the binding moves to this version, the copy and its snapshot stay as they are
        binding = item.binding
        op.payload = item.payload
        kept = RemoteRef(
            external_id=binding.external_id,
            number=binding.external_number,
            remote_version=binding.remote_version,
            raw=binding.raw_payload,
        )
        _succeed(op, kept)
        report.count("skipped")
        return
    if not _begin(op, item.payload):
        report.count("skipped")
        return
    crash_point("before_request", op)
    try:
        ref = _send(connector, item)
    except UncertainError as exc:
        _settle(op, State.UNCERTAIN, str(exc))
        report.count("failed")
        report.messages.append(f"{op}: outcome unknown, verified by lookup before any retry")
        return
    except RetryableError as exc:
        _settle(op, State.RETRY_SCHEDULED, str(exc), delay=exc.retry_after or RETRY_DELAY.total_seconds())
        raise PushPaused(f"{op.connection} asked us to wait: {exc}", exc.retry_after) from exc
    except ConflictError as exc:
        verified = _verified(connector, op, item.payload) if op.attempts > 1 else None
        if verified is not None:
            _succeed(
                op, verified, deleted=op.operation == Op.DELETE, snapshot=_copy(connector, item, verified)
            )
            report.count("updated")
            return
        moved = None
        if op.operation == Op.UPDATE and item.binding is not None and not refreshed:
            moved = _moved_by_itself(connector, op, item.binding)
        if moved is not None:
            item.binding.remote_version = moved[:100]
            item.binding.save(update_fields=["remote_version", "last_synced_at"])
            execute(connector, item, report, refreshed=True)
            return
        _settle(op, State.FAILED, str(exc))
        _exception(
            op,
            Kind.CONFLICT,
            f"{document_label(op.object_type, item.document)} changed in the destination since it was "
            "last written",
            f"{exc} Nothing was overwritten. Compare the two, then re-push or accept the destination's "
            "version with an override.",
            document=item.document,
        )
        report.count("failed")
        return
    except NotFoundError as exc:
        if op.operation in (Op.VOID, Op.DELETE):
            gone = RemoteRef(external_id=item.binding.external_id if item.binding else "")
            _succeed(op, gone, deleted=True, snapshot=_copy(connector, item, gone))
            report.count("updated")
            return
        _fail(op, item, exc, report)
        return
    except PermanentError as exc:
        _fail(op, item, exc, report)
        return
    crash_point("after_write", op)
    _succeed(op, ref, deleted=op.operation == Op.DELETE, snapshot=_copy(connector, item, ref))
    crash_point("after_commit", op)
    report.count("created" if op.operation == Op.CREATE else "updated")


def _found(connector: Any, item: Prepared, found: RemoteRef, report: PushReport) -> None:
    """A create that follows an unknown outcome found its document in the destination: bind it at the
    version that was sent (the oldest one that may have landed, should several have been sent), so a
    newer version of the document goes next as an update, never left unsent behind a stale copy."""
    op = item.op
    sent = (
        PushOperation.objects.filter(
            profile_id=op.profile_id,
            connection_id=op.connection_id,
            object_type=op.object_type,
            object_id=op.object_id,
            operation=Op.CREATE,
            attempts__gt=0,
            state__in=UNSETTLED,
        )
        .order_by("document_version", "pk")
        .first()
    )
    if sent is None or sent.pk == op.pk or sent.document_version >= op.document_version:
        _succeed(op, found, snapshot=_copy(connector, item, found))
        report.count("created")
        return
    _succeed(sent, found, snapshot=_copy(connector, item, found))
    if sent.state != State.SUCCEEDED:  # the id there belongs to another document: reported as such
        report.count("failed")
        return
    _settle(op, State.SUPERSEDED, f"version {sent.document_version} was found there; updated next")
    report.pending_updates.append((op.object_type, op.object_id))
    report.count("created")


def _fail(op: PushOperation, item: Prepared, exc: ConnectorError, report: PushReport) -> None:
    _settle(op, State.FAILED, str(exc))
    details: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, ValidationError):
        details.update(field=exc.field, value=str(exc.value))
    _exception(
        op,
        Kind.SYNC_FAILURE,
        f"{document_label(op.object_type, item.document)} was refused by {op.connection}",
        f"{exc}. Fix the document or its mapping, then use 'Retry failed items' on the job.",
        document=item.document,
        details=details,
    )
    report.count("failed")
