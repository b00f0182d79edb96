"""What every part of a push shares: the states and constants, the crash points, the run's report and
the prepared document."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from connectors.base import (
    PushContext,
)
from reconciliation.models import ReconciliationException
from sync.models import (
    Binding,
    CreditNote,
    Customer,
    Invoice,
    ObjectType,
    Payment,
    PushOperation,
)

Kind = ReconciliationException.Kind
Severity = ReconciliationException.Severity
Op = PushOperation.Operation
State = PushOperation.State
# documents per page: a multiple of every connector's batch_limit (QuickBooks 30, Xero 50), so a page
# goes out in full batches only
PAGE_SIZE = 150
ORDER = (ObjectType.CUSTOMER, ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT)
MODELS: dict[str, Any] = {
    ObjectType.INVOICE: Invoice,
    ObjectType.CREDIT_NOTE: CreditNote,
    ObjectType.PAYMENT: Payment,
    ObjectType.CUSTOMER: Customer,
}
DATE_FIELDS = {
    ObjectType.INVOICE: "issue_date",
    ObjectType.CREDIT_NOTE: "issue_date",
    ObjectType.PAYMENT: "transaction_date",
}
GONE = {"void", "deleted", "failed"}
UNSETTLED = (State.IN_FLIGHT, State.UNCERTAIN, State.RETRY_SCHEDULED)
DONE = (State.SUCCEEDED, State.FAILED)
RETRY_DELAY = timedelta(minutes=1)

# A test replaces this to kill the worker at a named point (before_request, after_write, after_commit).
CRASH_HOOK: Callable[[str, PushOperation], None] | None = None


def crash_point(name: str, operation: PushOperation) -> None:
    if CRASH_HOOK is not None:
        CRASH_HOOK(name, operation)


class PushPaused(Exception):
    """The destination asked us to wait (rate limit, outage): the run stops, the rest waits its turn."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class PushReport:
    seen: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    blocked: int = 0
    messages: list[str] = field(default_factory=list)
    # documents bound at an older version than they are now (a create found after a crash): updated next
    pending_updates: list[tuple[str, int]] = field(default_factory=list)
    # batches in flight side by side (sync.sending) count into the same report
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, outcome: str) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)


def operation_key(profile_id: int, object_type: str, object_id: int, version: int, operation: str) -> str:
    """The deterministic idempotency key: the same work always gets the same key (40 hex characters fit
    every platform's header, QuickBooks' 50-character requestid included)."""
    text = f"ledgerlink:{profile_id}:{object_type}:{object_id}:{version}:{operation}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass
class Prepared:
    """One document ready to send: its operation, the exact payload and what the send needs."""

    op: PushOperation
    document: Any
    record: Any
    context: PushContext
    payload: Any
    binding: Binding | None = None


class Unmatched(Exception):
    def __init__(self, payment: Payment) -> None:
        super().__init__(f"payment {payment.reference} matches no invoice")
        self.payment = payment
