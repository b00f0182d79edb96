"""The connector contract: canonical records a connector returns, and the typed errors it raises.

A connector translates between one platform's wire format and these records; it never writes canonical
documents itself (the sync services do) and never talks to another connector.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

INVOICE_STATUSES = ("draft", "open", "partially_paid", "paid", "void", "deleted")
CREDIT_NOTE_STATUSES = ("draft", "open", "partially_applied", "applied", "void", "deleted")
PAYMENT_STATUSES = ("pending", "completed", "failed", "void")


# --- canonical records --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomerRecord:
    name: str
    email: str = ""
    tax_number: str = ""
    external_id: str = ""
    currency: str = ""


@dataclass(frozen=True)
class LineRecord:
    description: str
    quantity: Decimal
    unit_price: Decimal
    subtotal: Decimal
    tax_amount: Decimal
    total: Decimal
    tax_rate: Decimal | None = None
    item_code: str = ""
    line_number: int = 1


@dataclass(frozen=True)
class InvoiceRecord:
    external_id: str
    number: str
    customer: CustomerRecord
    issue_date: date
    currency: str
    status: str
    lines: tuple[LineRecord, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    amount_paid: Decimal
    amount_due: Decimal
    due_date: date | None = None
    memo: str = ""
    raw: Any = field(default=None, compare=False)

    @property
    def lines_total(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class AllocationRecord:
    invoice_number: str
    amount: Decimal
    allocated_on: date | None = None


@dataclass(frozen=True)
class PaymentRecord:
    external_id: str
    reference: str
    customer: CustomerRecord | None
    transaction_date: date
    currency: str
    amount: Decimal
    allocations: tuple[AllocationRecord, ...] = ()
    method: str = ""
    status: str = "completed"
    processor_transaction_id: str = ""
    fee: Decimal | None = None
    payout_id: str = ""
    memo: str = ""
    raw: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class CreditNoteRecord:
    external_id: str
    number: str
    customer: CustomerRecord
    issue_date: date
    currency: str
    status: str
    lines: tuple[LineRecord, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    remaining_credit: Decimal
    original_invoice_number: str = ""
    allocations: tuple[AllocationRecord, ...] = ()
    memo: str = ""
    raw: Any = field(default=None, compare=False)


def _jsonable(value: Any, normalise: bool) -> Any:
    if isinstance(value, Decimal):
        # normalised, 32.60 and 32.6 are the same amount and must hash the same
        return format(value.normalize(), "f") if normalise else str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item, normalise) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, normalise) for item in value]
    return value


def record_to_dict(record: Any, *, with_raw: bool = False, normalise: bool = False) -> dict[str, Any]:
    """Plain JSON-ready dict of a canonical record (decimals as strings, dates ISO)."""
    data = {
        f.name: getattr(record, f.name) for f in dataclasses.fields(record) if with_raw or f.name != "raw"
    }
    for key, value in data.items():
        if dataclasses.is_dataclass(value):
            data[key] = record_to_dict(value, normalise=normalise)
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            data[key] = [record_to_dict(item, normalise=normalise) for item in value]
    return _jsonable(data, normalise)


def content_hash(record: Any) -> str:
    """Stable hash of a record's canonical content (not its raw payload): unchanged input, unchanged hash."""
    payload = json.dumps(record_to_dict(record, normalise=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


# --- errors -------------------------------------------------------------------------------------------
class ConnectorError(Exception):
    """Base of every error a connector raises."""


class RetryableError(ConnectorError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    pass


class AuthNeededError(PermanentError):
    pass


class NotFoundError(PermanentError):
    pass


class ValidationError(PermanentError):
    def __init__(self, message: str, *, field: str = "", value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


@dataclass(frozen=True)
class RecordProblem:
    """One input record that cannot become a canonical document, and exactly why."""

    key: str  # the document's identity in the source (number or external id), "" when unknown
    field: str
    raw: str
    message: str
    location: str = ""  # where in the source, e.g. "row 17"
    rows: tuple[int, ...] = ()


# --- the contract -------------------------------------------------------------------------------------
class Connector:
    """Base class: one subclass per platform, registered in connectors.registry.PLATFORMS."""

    platform: ClassVar[str]
    label: ClassVar[str]
    # object type -> operations supported, e.g. {"invoice": {"read", "create"}}
    capabilities: ClassVar[dict[str, frozenset[str]]]
    uses_oauth: ClassVar[bool] = False

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def check_credentials(self) -> None:
        """Raise AuthNeededError or another ConnectorError when the connection cannot be used."""
        raise NotImplementedError

    @classmethod
    def supports(cls, object_type: str, operation: str) -> bool:
        return operation in cls.capabilities.get(object_type, frozenset())
