"""Writing exceptions: one row per finding, found again by its fingerprint, resolved when it goes away.

`exception_record` writes one finding (the sync engine's); `findings_record` writes a reconciliation
page's findings in bulk. Runs are started by `reconcile_enqueue`, `recheck` and the schedule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from reconciliation import rules
from reconciliation.models import Override, ReconciliationException

if TYPE_CHECKING:
    from sync.models import SyncJob, SyncProfile

Kind = ReconciliationException.Kind
State = ReconciliationException.State


def exception_fingerprint(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()


def _base_amount(amount: Decimal | None, currency: str) -> Decimal | None:
    # Conversion at a rate comes with FX rates; until then only base-currency amounts are known.
    return amount if amount is not None and currency == settings.BASE_CURRENCY else None


@transaction.atomic
def exception_record(
    *,
    kind: str,
    fingerprint: str,
    title: str,
    message: str = "",
    severity: str = ReconciliationException.Severity.MEDIUM,
    connection: Any = None,
    job: Any = None,
    object_type: str = "",
    object_id: int | None = None,
    document_number: str = "",
    external_id: str = "",
    currency: str = "",
    amount_at_risk: Decimal | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[ReconciliationException, bool]:
    """Open the exception, or refresh the one with the same fingerprint. Returns (exception, created).

    A finding that comes back after it was resolved reopens; an ignored one stays ignored.
    """
    values = {
        "kind": kind,
        "title": title[:255],
        "message": message,
        "severity": severity,
        "connection": connection,
        "job": job,
        "object_type": object_type,
        "object_id": object_id,
        "document_number": document_number[:100],
        "external_id": external_id[:255],
        "currency": currency,
        "amount_at_risk": amount_at_risk,
        "amount_at_risk_base": _base_amount(amount_at_risk, currency),
        "details": details or {},
    }
    existing = ReconciliationException.objects.select_for_update().filter(fingerprint=fingerprint).first()
    if existing is None:
        return ReconciliationException.objects.create(fingerprint=fingerprint, **values), True
    for name, value in values.items():
        setattr(existing, name, value)
    existing.occurrences += 1
    if existing.state == State.RESOLVED:
        existing.state = State.OPEN
        existing.resolved_at = None
        existing.resolved_by = None
        existing.resolved_by_system = False
    existing._change_reason = "seen again"  # type: ignore[attr-defined]
    existing.save()
    return existing, False


def exceptions_resolve_by_system(exceptions: Iterable[ReconciliationException], *, reason: str) -> int:
    """Resolve findings that a clean re-check no longer sees (recorded as resolved by the system)."""
    now = timezone.now()
    count = 0
    for exception in exceptions:
        if not exception.is_open:
            continue
        exception.state = State.RESOLVED
        exception.resolved_at = now
        exception.resolved_by = None
        exception.resolved_by_system = True
        exception._change_reason = reason  # type: ignore[attr-defined]
        exception.save()
        count += 1
    return count


# --- reconciliation runs: a page of findings at a time ------------------------------------------------
# Kinds the sync engine also opens for something a rule judges: the rule takes that exception over (no
# twin) and resolves it once the check comes back clean.
FOREIGN_RULES = {Kind.UNMATCHED_PAYMENT: "unmatched_payment"}
_VISIBLE = (
    "severity",
    "state",
    "title",
    "message",
    "connection_id",
    "external_id",
    "document_number",
    "currency",
    "amount_at_risk",
    "amount_at_risk_base",
    "details",
)
_UPDATED = [
    "severity",
    "state",
    "title",
    "message",
    "connection",
    "job",
    "document_number",
    "external_id",
    "currency",
    "amount_at_risk",
    "amount_at_risk_base",
    "details",
    "occurrences",
    "last_seen_at",
    "resolved_at",
    "resolved_by",
    "resolved_by_system",
]
_PLACES = Decimal("0.0001")


@dataclass
class PageOutcome:
    opened: int = 0
    updated: int = 0
    reopened: int = 0
    resolved: int = 0
    accepted: int = 0
    checked: int = 0
    failed: int = 0


def _quantized(value: Decimal | None) -> Decimal | None:
    return value.quantize(_PLACES) if value is not None else None


def _visible(exception: ReconciliationException) -> tuple[Any, ...]:
    return tuple(getattr(exception, name) for name in _VISIBLE)


def _finding_values(finding: rules.Finding, job: Any) -> dict[str, Any]:
    doc = finding.document
    return {
        "kind": finding.kind,
        "severity": finding.severity,
        "title": finding.title[:255],
        "message": finding.message,
        "connection_id": finding.connection_id,
        "job": job,
        "object_type": doc.object_type,
        "object_id": doc.object_id,
        "document_number": doc.number[:100],
        "external_id": finding.external_id[:255],
        "currency": doc.currency[:3],
        "amount_at_risk": _quantized(finding.amount_at_risk),
        "amount_at_risk_base": _quantized(finding.amount_at_risk_base),
        "details": finding.details,
    }


def _resolve(exception: ReconciliationException, now: Any, reason: str) -> None:
    exception.state = State.RESOLVED
    exception.resolved_at = now
    exception.resolved_by = None
    exception.resolved_by_system = True
    exception._change_reason = reason  # type: ignore[attr-defined]


def _rule_of(exception: ReconciliationException) -> str | None:
    details = exception.details if isinstance(exception.details, dict) else {}
    return details.get("rule") or FOREIGN_RULES.get(exception.kind)  # type: ignore[call-overload]


def findings_record(
    object_type: str,
    findings: Sequence[rules.Finding],
    *,
    judged: dict[tuple[int, int | None], set[str]],
    job: Any = None,
    connections: Sequence[int] | None = None,
) -> PageOutcome:
    """Write one page of a run: open new findings, update the ones seen before (an ignored one stays
    ignored; a resolved one reopens, unless an applied accept-difference override covers its amount: a
    finding with no amount is never covered), and
    resolve the open exceptions the run judged clean.

    `judged` maps (document id, connection id) to the rules that judged it: only an exception of such a
    rule is resolved, never the sync engine's kinds nor a finding a rule could not judge this time (a
    copy whose values are unknown). `connections` limits the exceptions touched (a profile's run).
    """
    ids = sorted({object_id for object_id, _ in judged} | {f.document.object_id for f in findings})
    fingerprints: dict[str, rules.Finding] = {}
    for finding in findings:
        fingerprints[exception_fingerprint(*finding.identity)] = finding
    if not ids:
        return PageOutcome()
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return _page_write(object_type, ids, fingerprints, judged, job, connections)
        except IntegrityError:
            # a twin opened concurrently (an overlapping run, or the sync engine): read again, once
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _page_write(
    object_type: str,
    ids: list[int],
    fingerprints: dict[str, rules.Finding],
    judged: dict[tuple[int, int | None], set[str]],
    job: Any,
    connections: Sequence[int] | None,
) -> PageOutcome:
    outcome = PageOutcome()
    now = timezone.now()
    # a range, not a long IN list: exceptions of documents in the range but not in the page are never
    # judged (no entry in `judged`), so reading them changes nothing
    in_scope = Q(object_type=object_type, object_id__gte=ids[0], object_id__lte=ids[-1], kind__in=rules.KINDS)
    if connections is not None:
        in_scope &= Q(connection_id__in=connections)
    existing = list(
        ReconciliationException.objects.select_for_update().filter(
            in_scope | Q(fingerprint__in=list(fingerprints))
        )
    )
    by_fingerprint = {exception.fingerprint: exception for exception in existing}
    adoptable = {
        (exception.kind, exception.object_id, exception.connection_id): exception
        for exception in existing
        if exception.is_open and exception.kind in FOREIGN_RULES and not (exception.details or {}).get("rule")
    }
    limits: dict[int, tuple[int, Decimal]] = {}
    if existing:
        for override_id, exception_id, limit in (
            Override.objects.filter(
                exception_id__in=[exception.pk for exception in existing],
                action=Override.Action.ACCEPT_DIFFERENCE,
                state=Override.State.APPLIED,
            )
            .exclude(limit_amount=None)
            .order_by("applied_at", "pk")
            .values_list("pk", "exception_id", "limit_amount")
        ):
            limits[exception_id] = (override_id, limit)  # the latest applied one counts
    created: list[ReconciliationException] = []
    changed: list[ReconciliationException] = []
    quiet: list[int] = []
    seen: set[int] = set()
    for fingerprint, finding in fingerprints.items():
        values = _finding_values(finding, job)
        exception = by_fingerprint.get(fingerprint) or adoptable.pop(
            (finding.kind, finding.document.object_id, finding.connection_id), None
        )
        if exception is None or exception.pk in seen:
            created.append(ReconciliationException(fingerprint=fingerprint, state=State.OPEN, **values))
            continue
        seen.add(exception.pk)
        before = _visible(exception)
        for name, value in values.items():
            setattr(exception, name, value)
        exception._change_reason = "seen again by reconciliation"  # type: ignore[attr-defined]
        accepted = limits.get(exception.pk)
        at_risk = finding.amount_at_risk
        # only an amount can be within a limit: a finding without one (a date, a status) is never covered
        if accepted is not None and at_risk is not None and abs(at_risk) <= accepted[1]:
            outcome.accepted += 1
            if exception.is_open:
                _resolve(exception, now, f"within the difference accepted by override #{accepted[0]}")
        elif exception.state == State.RESOLVED:
            exception.state = State.OPEN
            exception.resolved_at = None
            exception.resolved_by = None
            exception.resolved_by_system = False
            why = "found again by reconciliation"
            if accepted is not None and at_risk is None:
                why += f", with no amount for the limit of override #{accepted[0]} to cover"
            elif accepted is not None:
                why += f", above the difference accepted by override #{accepted[0]}"
            exception._change_reason = why  # type: ignore[attr-defined]
            outcome.reopened += 1
        outcome.updated += 1
        if _visible(exception) == before:
            quiet.append(exception.pk)
            continue
        exception.occurrences += 1
        exception.last_seen_at = now
        changed.append(exception)
    for exception in existing:
        if exception.pk in seen or not exception.is_open or exception.object_type != object_type:
            continue
        if connections is not None and exception.connection_id not in connections:
            continue
        rule = _rule_of(exception)
        if (
            rule
            and exception.object_id is not None
            and rule in judged.get((exception.object_id, exception.connection_id), ())
        ):
            _resolve(exception, now, "resolved by reconciliation: no longer found")
            changed.append(exception)
            outcome.resolved += 1
    if created:
        bulk_create_with_history(
            created, ReconciliationException, default_change_reason="found by reconciliation"
        )
        outcome.opened = len(created)
    if changed:
        bulk_update_with_history(changed, ReconciliationException, _UPDATED)
    if quiet:
        # seen again with nothing new to show: counted, without a history row per run
        ReconciliationException.objects.filter(pk__in=quiet).update(
            occurrences=F("occurrences") + 1, last_seen_at=now, job=job
        )
    return outcome


# --- starting runs ------------------------------------------------------------------------------------
def reconcile_enqueue(
    profile: SyncProfile | None = None,
    *,
    user: Any = None,
    trigger: str = "manual",
    document: tuple[str, int] | None = None,
    full: bool = False,
) -> SyncJob:
    """Queue a reconciliation run: of a profile, of everything (no profile), or of one document
    (`document`: (object type, id), every copy of it; a daily summary's kind and id checks its totals).
    `full`: the destinations are read again in full."""
    from sync.jobs import job_enqueue
    from sync.models import SyncJob

    params: dict[str, Any] = {}
    if document is not None:
        object_type, object_id = document
        known = (*rules.OBJECT_TYPES, *rules.SUMMARY_KINDS.values())
        if object_type not in known:
            raise ValueError(f"document: {object_type!r} is not reconciled; use one of {known}")
        params["document"] = [object_type, int(object_id)]
    if full:
        params["full"] = True
    return job_enqueue(
        kind=SyncJob.Kind.RECONCILE, trigger=trigger, profile=profile, user=user, params=params
    )


def recheck(exception: ReconciliationException, *, user: Any = None) -> SyncJob:
    """Re-run the checks of the exception's document (every copy of it) in a job of its own."""
    if not exception.object_type or exception.object_id is None:
        raise ValueError(f"exception #{exception.pk} names no document to check again")
    return reconcile_enqueue(user=user, document=(exception.object_type, exception.object_id))


def reconcile_scheduled() -> int | None:
    """The schedule's tick: a run of everything, unless one is already queued or running."""
    from sync.models import SyncJob

    active = SyncJob.objects.filter(
        kind=SyncJob.Kind.RECONCILE,
        profile=None,
        state__in=[SyncJob.State.QUEUED, SyncJob.State.RUNNING],
        params={},
    )
    with transaction.atomic():
        if active.exists():
            return None
        return reconcile_enqueue(trigger=SyncJob.Trigger.SCHEDULE).pk
