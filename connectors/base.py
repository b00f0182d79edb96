"""The connector contract: canonical records a connector returns, and the typed errors it raises.

A connector translates between one platform's wire format and these records; it never writes canonical
documents itself (the sync services do) and never talks to another connector.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
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
    invoice_external_id: str = ""  # the invoice's id at the same platform, when the platform gives it


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


@dataclass(frozen=True)
class PayoutLineRecord:
    """One balance movement inside a payout: a charge, refund, fee or adjustment, gross, fee and net."""

    external_id: str
    kind: str  # charge, refund, payment, adjustment, fee, payout ...
    source_id: str
    amount: Decimal
    fee: Decimal
    net: Decimal
    description: str = ""


@dataclass(frozen=True)
class PayoutRecord:
    """Money a payment gateway paid out to the bank, with what it was made of (fees and net)."""

    external_id: str
    currency: str
    amount: Decimal
    arrival_date: date | None
    status: str
    lines: tuple[PayoutLineRecord, ...] = ()
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
    """Try again later (429, 5xx, connection refused); `retry_after` in seconds when the platform said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UncertainError(RetryableError):
    """The request left and no answer came back (timeout, 5xx after a write): it may have happened.

    Never retry a create blindly after this: look the document up by its reference first.
    """


class PermanentError(ConnectorError):
    pass


class AuthNeededError(PermanentError):
    """The credentials are missing, revoked or expired beyond refresh: a person must re-authorise."""


class NotFoundError(PermanentError):
    pass


class ConflictError(PermanentError):
    """The remote copy changed since we last read it (stale SyncToken, ETag mismatch)."""


class ValidationError(PermanentError):
    """The platform refused the payload; `field` and `value` name what it refused when it said."""

    def __init__(self, message: str, *, field: str = "", value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class WebhookError(ConnectorError):
    """A webhook that must not be processed; `status` is what the platform expects back."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RecordProblem:
    """One input record that cannot become a canonical document, and exactly why."""

    key: str  # the document's identity in the source (number or external id), "" when unknown
    field: str
    raw: str
    message: str
    location: str = ""  # where in the source, e.g. "row 17"
    rows: tuple[int, ...] = ()


# --- what connectors exchange with the sync engine ------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One record that changed at the platform since a cursor.

    `record` is the canonical record, or None when the record was deleted (`deleted=True`) or could not
    be translated (`problem` says why: that one record is reported, the page goes on).
    """

    object_type: str
    external_id: str
    record: Any = None
    deleted: bool = False
    remote_version: str = ""
    updated_at: datetime | None = None
    problem: RecordProblem | None = None
    raw: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class ChangePage:
    """A page of changes. Pass `next_page` back to continue; `high_water` is the newest change time seen,
    which the caller stores as its cursor (and reads back with an overlap window) once every page is done."""

    changes: list[Change]
    next_page: str | None = None
    high_water: datetime | None = None


@dataclass(frozen=True)
class RemoteRef:
    """What a write left at the platform: its id, number, version (SyncToken, ETag) and the raw answer."""

    external_id: str
    number: str = ""
    remote_version: str = ""
    status: str = ""
    raw: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class PushContext:
    """Destination-side values the mapping resolved for one document (all ids are the destination's).

    `reference` is the deterministic reference written into the document (DocNumber, Reference, metadata)
    so that a lookup can find it after a crash; `lines` holds one mapping per canonical line with the keys
    `account`, `tax_code` and `item` where the platform needs them.
    """

    reference: str = ""
    number: str = ""
    customer_id: str = ""
    lines: tuple[dict[str, str], ...] = ()
    deposit_account: str = ""
    invoice_ids: dict[str, str] = field(default_factory=dict)  # canonical invoice number -> destination id
    credit_note_ids: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    """One "something changed" notice; the record itself is re-fetched, never trusted from the body."""

    event_id: str
    object_type: str  # canonical object type ("invoice", ...) or the platform's name when unmapped
    external_id: str
    action: str  # created, updated, deleted, voided, paid ...
    occurred_at: datetime | None = None
    account: str = ""  # realm, tenant or account the event is about


@dataclass(frozen=True)
class WebhookResult:
    events: list[WebhookEvent]
    # set when the request is a handshake that needs a particular answer (status, body, content type)
    response: tuple[int, bytes, str] | None = None


@dataclass(frozen=True)
class RateLimit:
    """A documented limit: at most `limit` requests per `period` seconds (or in flight, when concurrent)."""

    name: str
    limit: int
    period: float = 0.0
    concurrent: bool = False


def limits_scaled(limits: tuple[RateLimit, ...], factor: float) -> tuple[RateLimit, ...]:
    """The same limits over periods `factor` times as long (a sandbox or benchmark squeezes them: 0.1
    makes "60 a minute" into "60 in 6 seconds"). Concurrency limits are left as they are."""
    if factor == 1:
        return limits
    return tuple(
        RateLimit(limit.name, limit.limit, limit.period * factor, limit.concurrent) for limit in limits
    )


@dataclass(frozen=True)
class OAuthConfig:
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    # query parameters of the callback to keep in Connection.options, e.g. QuickBooks' realmId
    callback_params: tuple[str, ...] = ()
    token_endpoint_auth_method: str = "client_secret_basic"
    extra_authorize_params: dict[str, str] = field(default_factory=dict)


OBJECT_TYPES = ("customer", "invoice", "payment", "credit_note", "payout")
OPERATIONS = (
    "read",
    "list_changes",
    "create",
    "update",
    "void",
    "delete",
    "record_payment",
    "webhook",
    "import_file",  # documents come in as files (CSV)
    "export_file",
)


# --- the contract -------------------------------------------------------------------------------------
class Connector:
    """Base class: one subclass per platform, registered in connectors.registry.PLATFORMS.

    The contract is a handful of methods; a connector implements those its `capabilities` table lists
    and the contract test (tests/connectors/test_contract.py) holds every registered connector to it.
    `parse` and `render` are pure (no HTTP): `connector_preview` and dry runs use them.
    """

    platform: ClassVar[str]
    label: ClassVar[str]
    # object type -> operations supported, e.g. {"invoice": frozenset({"read", "create"})}
    capabilities: ClassVar[dict[str, frozenset[str]]]
    uses_oauth: ClassVar[bool] = False
    oauth: ClassVar[OAuthConfig | None] = None
    default_base_url: ClassVar[str] = ""
    # documented limits, applied per connection and shared by every worker (connectors.ratelimit)
    rate_limits: ClassVar[tuple[RateLimit, ...]] = ()
    # What the sync engine's mapping needs to know of a destination:
    # per-line keys of PushContext.lines -> "required", "taxed" (required on a line with a tax rate) or
    # "optional"; canonical reference kind (account, tax_code, item) -> the name reference_data() takes;
    # the reference_data() field that mappings store; and whether customers are found by name.
    line_mapping: ClassVar[dict[str, str]] = {}
    reference_kinds: ClassVar[dict[str, str]] = {}
    reference_key: ClassVar[str] = "id"
    customer_reference_is_name: ClassVar[bool] = False
    # creates per request for connectors with create_many (Xero 50 invoices a call, QuickBooks batches of 30)
    batch_limit: ClassVar[int] = 1
    # Webhooks in (connectors.inbound): a query parameter whose value a subscription handshake wants
    # echoed back as text/plain (Business Central's "validationToken"), and whether bodies are JSON.
    webhook_validation_param: ClassVar[str] = ""
    webhook_json: ClassVar[bool] = True
    # whether an event that names no account is another account's (Stripe Connect: the platform account's
    # own) rather than this connection's, when the connection names its account (webhook_account)
    webhook_unnamed_is_elsewhere: ClassVar[bool] = False

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    def supports(cls, object_type: str, operation: str) -> bool:
        return operation in cls.capabilities.get(object_type, frozenset())

    def after_authorisation(self) -> None:
        """Called after an OAuth consent stored new tokens (Xero reads its tenant id here)."""

    # pure translation
    @classmethod
    def parse(cls, object_type: str, raw: dict[str, Any]) -> Any:
        """One platform record (as its API returns it) -> canonical record. Raises ValidationError."""
        raise NotImplementedError

    @classmethod
    def render(cls, object_type: str, record: Any, context: PushContext) -> dict[str, Any]:
        """Canonical record -> the exact payload a create would send."""
        raise NotImplementedError

    # HTTP
    def check_credentials(self) -> None:
        """Raise AuthNeededError or another ConnectorError when the connection cannot be used."""
        raise NotImplementedError

    def list_changes(
        self, object_type: str, *, since: datetime | None, page: str | None = None
    ) -> ChangePage:
        """Records of `object_type` changed at or after `since` (None: everything), one page at a time."""
        raise NotImplementedError

    def fetch(self, object_type: str, external_id: str) -> Change:
        """The current state of one record (NotFoundError when it does not exist)."""
        raise NotImplementedError

    def find_by_reference(self, object_type: str, reference: str) -> RemoteRef | None:
        """Look a document up by the deterministic reference a create wrote into it (None: not there)."""
        raise NotImplementedError

    def create(self, object_type: str, payload: dict[str, Any], *, idempotency_key: str) -> RemoteRef:
        raise NotImplementedError

    def update(
        self,
        object_type: str,
        external_id: str,
        payload: dict[str, Any],
        *,
        remote_version: str,
        idempotency_key: str,
    ) -> RemoteRef:
        """Change a record written earlier; ConflictError when `remote_version` is no longer current."""
        raise NotImplementedError

    def void(
        self, object_type: str, external_id: str, *, remote_version: str, idempotency_key: str
    ) -> RemoteRef:
        raise NotImplementedError

    def delete(
        self, object_type: str, external_id: str, *, remote_version: str, idempotency_key: str
    ) -> RemoteRef:
        """Remove a record where the platform allows it (drafts, unposted documents)."""
        raise NotImplementedError

    def record_payment(
        self, payment: PaymentRecord, context: PushContext, *, idempotency_key: str
    ) -> RemoteRef:
        """Apply a payment to invoices at the platform (context.invoice_ids gives their ids there)."""
        raise NotImplementedError

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResult:
        """Check the signature on the raw body and list what changed; WebhookError when it must be refused."""
        raise NotImplementedError

    def webhook_account(self) -> str | None:
        """The account (realm, tenant, connected account) this connection's webhook events name, for
        platforms that send one app's events for every connected account to the same endpoint; an event
        naming another account is not this connection's (connectors.inbound). None (the default, and
        when the connection does not say which account it is): not checked."""
        return None
