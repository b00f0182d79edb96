"""Writing exceptions: one row per finding, found again by its fingerprint, resolved when it goes away."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reconciliation.models import ReconciliationException

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
