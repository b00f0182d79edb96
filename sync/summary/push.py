"""Pushing daily summaries through the outbox, under the same exactly-once protocol as a single document."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from connectors.base import NotFoundError, PushContext, RemoteRef
from reconciliation.models import ReconciliationException
from reconciliation.services import exception_fingerprint, exception_record, exceptions_resolve_by_system
from sync import mapping
from sync import push as pushing
from sync.models import Binding, ObjectType, PushOperation, SummaryMember, SummaryPosting, SyncProfile
from sync.summary.base import (
    KIND_OF,
    SUMMARY_CUSTOMER,
    TYPE_OF,
    ExceptionKind,
    Op,
    State,
    summary_last_closed_day,
)
from sync.summary.compose import _days_to_compose, _unposted, _with_related, summaries_compose
from sync.summary.render import MembersBlocked, _label, summary_render


class SummaryConnector:
    """The destination's connector as the outbox protocol sees a summary: the summary kind is the object
    type of its operations and bindings (so they never meet a single document's), the connector is
    called with the document type it is."""

    def __init__(self, connector: Any, record: Any = None, context: PushContext | None = None) -> None:
        self._connector = connector
        self._record = record
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    def supports(self, kind: str, operation: str) -> bool:
        return self._connector.supports(TYPE_OF.get(kind, kind), operation)

    def find_by_reference(self, kind: str, reference: str) -> Any:
        return self._connector.find_by_reference(TYPE_OF[kind], reference)

    def fetch(self, kind: str, external_id: str) -> Any:
        return self._connector.fetch(TYPE_OF[kind], external_id)

    def create(self, kind: str, payload: Any, *, idempotency_key: str) -> Any:
        if TYPE_OF[kind] == ObjectType.PAYMENT:
            return self._connector.record_payment(
                self._record, self._context, idempotency_key=idempotency_key
            )
        return self._connector.create(TYPE_OF[kind], payload, idempotency_key=idempotency_key)

    def update(
        self, kind: str, external_id: str, payload: Any, *, remote_version: str, idempotency_key: str
    ) -> Any:
        return self._connector.update(
            TYPE_OF[kind],
            external_id,
            payload,
            remote_version=remote_version,
            idempotency_key=idempotency_key,
        )

    def void(self, kind: str, external_id: str, *, remote_version: str, idempotency_key: str) -> Any:
        return self._connector.void(
            TYPE_OF[kind], external_id, remote_version=remote_version, idempotency_key=idempotency_key
        )

    def delete(self, kind: str, external_id: str, *, remote_version: str, idempotency_key: str) -> Any:
        return self._connector.delete(
            TYPE_OF[kind], external_id, remote_version=remote_version, idempotency_key=idempotency_key
        )


def _members(posting: SummaryPosting) -> list[Any]:
    object_type = TYPE_OF[posting.kind]
    ids = SummaryMember.objects.filter(summary=posting).values("object_id")
    return list(
        _with_related(object_type, pushing.MODELS[object_type].objects.filter(pk__in=ids)).order_by("pk")
    )


def summary_operation(posting: SummaryPosting, binding: Binding | None) -> str | None:
    if binding is None:
        return Op.CREATE if posting.member_count else None
    if binding.remote_deleted:
        return None
    return Op.UPDATE if posting.member_count else Op.VOID


def _member_fingerprints(posting: SummaryPosting, documents: Iterable[Any]) -> list[str]:
    object_type = TYPE_OF[posting.kind]
    return [
        exception_fingerprint(ExceptionKind.MAPPING_MISSING, posting.profile_id, object_type, d.pk)
        for d in documents
    ] + [
        exception_fingerprint(
            ExceptionKind.MAPPING_MISSING, posting.profile_id, "summary", f"customer:{posting.currency}"
        )
    ]


def _members_blocked(
    pusher: pushing.Pusher, op: PushOperation, posting: SummaryPosting, exc: MembersBlocked
) -> None:
    pushing._settle(op, State.BLOCKED, str(exc))
    where = pushing.mapping_url(pusher.profile)
    object_type = TYPE_OF[posting.kind]
    for document, problems in exc.problems.items():
        exception_record(
            kind=ExceptionKind.MAPPING_MISSING,
            fingerprint=exception_fingerprint(
                ExceptionKind.MAPPING_MISSING, posting.profile_id, object_type, document.pk
            ),
            title=f"{_label(document)} holds back daily summary {posting.number}: {problems[0].message}",
            message=(
                f"{'; '.join(p.message for p in problems)}. A summary is posted complete or not at all: "
                f"add the mapping at {where} (or correct the document at the source); the summary goes "
                "through on the next run."
            ),
            severity=ReconciliationException.Severity.MEDIUM,
            connection=pusher.profile.destination,
            job=pusher.job,
            object_type=object_type,
            object_id=document.pk,
            document_number=getattr(document, "number", "") or getattr(document, "reference", ""),
            currency=document.currency,
            amount_at_risk=getattr(document, "total", None) or getattr(document, "amount", None),
            details={
                "summary": posting.pk,
                "summary_number": posting.number,
                "problems": [p.as_dict() for p in problems],
                "mapping_url": where,
                "operation": op.pk,
            },
        )
    pusher.report.count("blocked")


def _summary_blocked(
    pusher: pushing.Pusher, op: PushOperation, posting: SummaryPosting, exc: mapping.MappingBlocked
) -> None:
    if exc.problems[0].value == SUMMARY_CUSTOMER:
        # one finding for the profile, however many summaries wait for it
        pushing._settle(op, State.BLOCKED, str(exc))
        where = pushing.mapping_url(pusher.profile)
        exception_record(
            kind=ExceptionKind.MAPPING_MISSING,
            fingerprint=exception_fingerprint(
                ExceptionKind.MAPPING_MISSING, posting.profile_id, "summary", f"customer:{posting.currency}"
            ),
            title=f"{posting.currency} daily summaries of {pusher.profile} have no customer to post to",
            message=f"{exc}. The summaries go through on the next run.",
            severity=ReconciliationException.Severity.MEDIUM,
            connection=pusher.profile.destination,
            job=pusher.job,
            details={"problems": [p.as_dict() for p in exc.problems], "mapping_url": where},
        )
        pusher.report.count("blocked")
        return
    pusher.blocked(op, posting, exc)


def _matches(sent: Any, raw: Any) -> bool:
    """The destination's copy carries what was sent (the keys sent; a list the destination extends with
    lines of its own, such as QuickBooks' subtotal line, still matches)."""
    differences = mapping.payload_diff(pushing.comparable(sent), pushing.unwrap(raw))
    return not [d for d in differences if not str(d.get("now", "")).endswith(" items")]


def _landed(connector: SummaryConnector, op: PushOperation) -> RemoteRef | None:
    """Did an update or void whose answer was lost reach the destination? Its copy there is read and
    compared with what was sent."""
    try:
        change = connector.fetch(op.object_type, op.external_id or pushing._bound_id(op))
    except NotFoundError:
        return None
    if op.operation == Op.VOID:
        landed = change.deleted or getattr(change.record, "status", "") in pushing.GONE
    else:
        landed = _matches(op.payload, change.raw)
    if not landed:
        return None
    return RemoteRef(change.external_id, remote_version=change.remote_version, raw=change.raw)


def _version_refreshed(connector: SummaryConnector, posting: SummaryPosting, binding: Binding) -> None:
    """Before an update: a destination copy whose version moved while its content is still what was last
    written (a payment applied to a summary invoice moves QuickBooks' SyncToken) is not a conflict; the
    new version is taken. A copy whose content someone changed keeps the old one, and the update is
    refused as a conflict."""
    try:
        change = connector.fetch(posting.kind, binding.external_id)
    except NotFoundError:
        return
    if not change.remote_version or change.remote_version == binding.remote_version:
        return
    written = (
        PushOperation.objects.filter(
            profile_id=posting.profile_id,
            object_type=posting.kind,
            object_id=posting.pk,
            state=State.SUCCEEDED,
            document_version=binding.document_version,
        )
        .exclude(payload=None)
        .order_by("-pk")
        .first()
    )
    if written is not None and _matches(written.payload, change.raw):
        binding.remote_version = change.remote_version[:100]
        binding.save(update_fields=["remote_version", "last_synced_at"])


def _earlier_settled(connector: SummaryConnector, posting: SummaryPosting, op: PushOperation) -> bool:
    """Settle what an earlier version of the summary sent and never heard back about, before this
    version goes: a create that landed is bound (so this version becomes an update of it, never a
    second create nor a binding of stale content), an update that landed moves the remote version on.
    Returns whether anything was there to settle."""
    earlier = list(
        PushOperation.objects.filter(
            profile_id=posting.profile_id,
            object_type=posting.kind,
            object_id=posting.pk,
            attempts__gt=0,
            state__in=pushing.UNSETTLED,
        )
        .exclude(pk=op.pk)
        .order_by("-document_version", "-pk")
    )
    if not earlier:
        return False
    latest = earlier[0]
    if latest.operation == Op.CREATE:
        found = connector.find_by_reference(posting.kind, posting.number)
    else:
        found = _landed(connector, latest)
    if found is not None:
        pushing._succeed(latest, found)
    PushOperation.objects.filter(pk__in=[e.pk for e in earlier], state__in=pushing.UNSETTLED).update(
        state=State.SUPERSEDED, error="not found in the destination; a later version goes instead"
    )
    return True


def _cannot_update(pusher: pushing.Pusher, posting: SummaryPosting) -> None:
    profile = pusher.profile
    op = pushing._operation(profile, posting.kind, posting, Op.UPDATE, posting.number, pusher.job)
    if op.state in (State.SUCCEEDED, State.FAILED):
        return
    pushing._settle(
        op, State.FAILED, f"{profile.destination} cannot update a {posting.get_kind_display().lower()}"
    )
    pushing._exception(
        op,
        ExceptionKind.SYNC_FAILURE,
        f"{posting} changed after it was posted, and {profile.destination} cannot update it",
        f"Its members changed since it was posted (now {posting.member_count}, total {posting.total} "
        f"{posting.currency}). Correct it in {profile.destination} by hand.",
        document=posting,
    )
    pusher.report.count("failed")


def summary_push(pusher: pushing.Pusher, posting: SummaryPosting) -> None:
    """One summary through the outbox, under the same protocol as a single document."""
    profile = pusher.profile
    pusher.report.seen += 1
    probe = SummaryConnector(pusher.connector)
    for _ in range(2):  # a second pass when settling an earlier version changed what there is to do
        binding = Binding.objects.filter(
            connection_id=profile.destination_id, object_type=posting.kind, object_id=posting.pk
        ).first()
        operation = summary_operation(posting, binding)
        if operation is None:
            pusher.report.count("skipped")
            return
        if operation == Op.UPDATE and not pusher.connector.supports(TYPE_OF[posting.kind], "update"):
            _cannot_update(pusher, posting)
            return
        op = pushing._operation(profile, posting.kind, posting, operation, posting.number, pusher.job)
        if op.state in (State.SUCCEEDED, State.FAILED, State.SUPERSEDED):
            pusher.report.count("skipped" if op.state != State.FAILED else "failed")
            return
        if not _earlier_settled(probe, posting, op):
            break
    op.refresh_from_db()
    if operation == Op.UPDATE and binding is not None and not (op.attempts and op.state in pushing.UNSETTLED):
        _version_refreshed(probe, posting, binding)
    if operation != Op.CREATE and op.attempts and op.state in pushing.UNSETTLED:
        # this very update was sent before and its answer lost: done if it landed
        landed = _landed(probe, op)
        if landed is not None:
            pushing._succeed(op, landed)
            pusher.report.count("updated")
            return
    documents = _members(posting)
    record = context = payload = None
    if operation != Op.VOID:
        try:
            rendered = summary_render(pusher, posting, documents)
        except MembersBlocked as exc:
            _members_blocked(pusher, op, posting, exc)
            return
        except mapping.MappingBlocked as exc:
            _summary_blocked(pusher, op, posting, exc)
            return
        record, context, payload = rendered.record, rendered.context, rendered.payload
    context = context or PushContext(reference=posting.number)
    connector = SummaryConnector(pusher.connector, record, context)
    pushing.execute(
        connector, pushing.Prepared(op, posting, record, context, payload, binding), pusher.report
    )
    op.refresh_from_db(fields=["state"])
    if op.state == State.SUCCEEDED:
        exceptions_resolve_by_system(
            ReconciliationException.objects.filter(fingerprint__in=_member_fingerprints(posting, documents)),
            reason="posted in its daily summary",
        )


def summaries_push(
    pusher: pushing.Pusher,
    *,
    date_range: tuple[date, date] | None = None,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> pushing.PushReport:
    """A push run of a daily-summary profile: compose the closed days that changed, then post every
    summary the destination does not have at its version. Invoices first, then credit notes, then
    payments (which are applied to the summary invoices)."""
    profile = pusher.profile
    last_day = summary_last_closed_day(now)
    wanted = set(profile.object_types or [])
    for object_type in (ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT):
        if object_type not in wanted:
            continue
        summaries_compose(
            profile, object_type, pusher.table, last_day=last_day, date_range=date_range, job=pusher.job
        )
        due = _unposted(profile, KIND_OF[object_type]).filter(day__lte=last_day)
        if date_range is not None:
            due = due.filter(day__range=date_range)
        for posting in due.order_by("day", "currency", "deposit_account"):
            summary_push(pusher, posting)
            if progress is not None:
                progress(1)
    return pusher.report


def summaries_due_count(profile: SyncProfile, *, date_range: tuple[date, date] | None = None) -> int:
    """About how many summaries a run will post (days to compose plus summaries waiting): for progress."""
    last_day = summary_last_closed_day()
    count = 0
    for object_type in (ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT):
        if object_type in (profile.object_types or []):
            count += len(_days_to_compose(profile, object_type, last_day=last_day, date_range=date_range))
    return count
